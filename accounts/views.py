from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.forms.utils import ErrorList
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from livecomment.lib.throttling import signup_throttled


def signup(request):
    next_url = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    if request.method == "POST":
        form = UserCreationForm(request.POST)
        wait = signup_throttled(request)
        if wait is not None:
            # THROTTLE_SIGNUP_IP_RATE per client IP, said on the form like the login page's limit.
            form.is_valid()  # bound and checked, so the page shows its fields as typed
            form._errors["__all__"] = ErrorList([f"Too many sign-ups from your address. Try again in {wait} s."])
            response = render(request, "accounts/signup.html", {"form": form, "next": next_url}, status=429)
            response["Retry-After"] = str(wait)
            return response
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(next_url)
    else:
        form = UserCreationForm()
    return render(request, "accounts/signup.html", {"form": form, "next": next_url})


class LoginView(auth_views.LoginView):
    """Django's login page behind the sign-in throttles (livecomment/lib/throttling.py):
    past THROTTLE_LOGIN_RATE it answers 429 saying how long to wait."""

    template_name = "accounts/login.html"

    def form_invalid(self, form):
        from livecomment.lib.throttling import login_wait

        wait = login_wait(self.request)
        if wait is None:
            return super().form_invalid(form)
        form._errors["__all__"] = ErrorList([f"Too many sign-in attempts. Try again in {wait} s."])
        response = self.render_to_response(self.get_context_data(form=form), status=429)
        response["Retry-After"] = str(wait)
        return response
