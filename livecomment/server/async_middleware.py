"""Django's stock middleware, run in the event loop instead of a thread.

Under ASGI, Django runs every hook of a `MiddlewareMixin` middleware through
`sync_to_async(thread_sensitive=True)`: two thread hops per middleware per
request, inside a per-request `ThreadSensitiveContext` that starts a new
thread for the request and another to join it. WhiteNoise is sync-only, which
makes Django adapt the whole chain below it to sync and then back to async for
our async views. For the comment API that was most of a POST's CPU
(docs/BENCHMARKS.md, "The write path").

The hooks of these middlewares are plain computation on the request and the
response -- headers, cookies, a lazy user -- so they run inline. Two may touch
the database, and hop to a thread exactly when they would: a session that must
be saved, and messages that must be stored (in the session when they do not
fit in the cookie). Everything else about them is Django's own code.

settings.MIDDLEWARE keeps naming the stock classes (Django's deploy checks look
for those names); the ASGI handler loads the versions here in their place
(`INLINE_VERSIONS`, livecomment/server/asgi_handler.py). The sync handler -- the test
client, WSGI -- keeps the stock ones, for which this changes nothing.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Messages
from django.contrib.sessions.middleware import SessionMiddleware as _Session
from django.middleware.clickjacking import XFrameOptionsMiddleware as _XFrame
from django.middleware.common import CommonMiddleware as _Common
from django.middleware.csrf import CsrfViewMiddleware as _Csrf
from django.middleware.security import SecurityMiddleware as _Security
from whitenoise.middleware import WhiteNoiseMiddleware as _WhiteNoise


class InlineHooks:
    """For a `MiddlewareMixin` subclass: in async mode, call the hooks inline."""

    async def __acall__(self, request):
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            else:
                response = self.process_response(request, response)
        return response

    def response_needs_thread(self, request, response) -> bool:
        return False


class SecurityMiddleware(InlineHooks, _Security):
    pass


class CommonMiddleware(InlineHooks, _Common):
    pass


class XFrameOptionsMiddleware(InlineHooks, _XFrame):
    pass


class AuthenticationMiddleware(InlineHooks, _Authentication):
    # process_request only sets a lazy user; it is loaded where it is used
    # (in the view's thread, or with `await request.auser()`).
    pass


class CsrfViewMiddleware(InlineHooks, _Csrf):
    # The token lives in a cookie (CSRF_USE_SESSIONS is off), so checking it
    # reads no session. process_view is called by the handler, not __acall__:
    # an async one keeps the handler from wrapping it in a thread hop.
    def __init__(self, get_response):
        super().__init__(get_response)
        if self.async_mode and not settings.CSRF_USE_SESSIONS:
            sync_process_view = self.process_view

            async def process_view(request, callback, callback_args, callback_kwargs):
                return sync_process_view(request, callback, callback_args, callback_kwargs)

            self.process_view = process_view


class SessionMiddleware(InlineHooks, _Session):
    def response_needs_thread(self, request, response) -> bool:
        session = request.session
        return (session.modified or settings.SESSION_SAVE_EVERY_REQUEST) and not session.is_empty()


class MessageMiddleware(InlineHooks, _Messages):
    def response_needs_thread(self, request, response) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class WhiteNoiseMiddleware(_WhiteNoise):
    """WhiteNoise, async-capable: a static file is answered inline (its
    response streams the file), anything else goes on without a thread hop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, **kwargs):
        super().__init__(get_response, **kwargs)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        if self.autorefresh:  # DEBUG: looks at the file system on every request
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)


INLINE_VERSIONS = {
    "django.middleware.security.SecurityMiddleware": f"{__name__}.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware": f"{__name__}.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware": f"{__name__}.SessionMiddleware",
    "django.middleware.common.CommonMiddleware": f"{__name__}.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware": f"{__name__}.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware": f"{__name__}.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware": f"{__name__}.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": f"{__name__}.XFrameOptionsMiddleware",
}
