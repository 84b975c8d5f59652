"""CSRF failures in the error shape API clients read (settings.CSRF_FAILURE_VIEW).

Session-authenticated writes need Django's CSRF token (the page's scripts
send it as X-CSRFToken); token-authenticated API calls do not. DRF answers
its own CSRF refusals (403 `permission_denied`); this covers the plain Django
JSON endpoints (the moderation console's) and keeps Django's HTML page for
forms.
"""

from django.http import JsonResponse
from django.views.csrf import csrf_failure as django_csrf_failure

from livecomment.lib.errors import error_body


def csrf_failure(request, reason=""):
    wants_json = (
        request.path.startswith("/api/")
        or request.content_type == "application/json"
        or "application/json" in request.headers.get("Accept", "")
    )
    if wants_json:
        return JsonResponse(
            error_body(
                "csrf_failed",
                f"CSRF check failed: {reason or 'missing or wrong token'}. "
                "Send the csrftoken cookie's value as X-CSRFToken, or use token authentication.",
            ),
            status=403,
        )
    return django_csrf_failure(request, reason)
