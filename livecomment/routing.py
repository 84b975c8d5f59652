"""Routes for the real-time endpoints; everything else goes to Django."""

from channels.routing import ProtocolTypeRouter, URLRouter


def asgi_routes() -> tuple[list, list]:
    """The routes taken before Django: (HTTP, WebSocket)."""
    from django.urls import re_path

    from dispatcher.routing import http_routes as rt_http
    from dispatcher.routing import websocket_routes as rt_ws
    from livecomment.lib.metrics import MetricsConsumer

    # /metrics on the event loop, before Django: no thread hop, and it reads this loop's hub.
    return [re_path(r"^metrics$", MetricsConsumer.as_asgi()), *rt_http], list(rt_ws)


def build_application(django_asgi_app):
    from django.urls import re_path

    http_routes, websocket_routes = asgi_routes()
    from comments.fastpost.endpoint import PostEndpoint
    from livecomment.lib.limits import BodyLimitMiddleware, HeaderLimitMiddleware

    # Comment POSTs from token clients: a group commit in front of Django (which
    # answers every request the endpoint does not take).
    django_app = PostEndpoint(django_asgi_app)
    # Bodies over MAX_REQUEST_BODY_BYTES: 413 before they are read (Django reads first).
    routes = {"http": BodyLimitMiddleware(URLRouter(http_routes + [re_path(r"", django_app)]))}
    if websocket_routes:
        # No AuthMiddlewareStack: the consumers authenticate themselves
        # (dispatcher/auth.py), and its session wrapper would stand between the
        # hub and the server's raw `send`, hiding a slow socket from it.
        routes["websocket"] = BrowserOriginValidator(URLRouter(websocket_routes))
    # Headers over MAX_REQUEST_HEADER_BYTES: 431 (uvicorn's parser takes any size).
    return HeaderLimitMiddleware(ProtocolTypeRouter(routes))


class BrowserOriginValidator:
    """WebSocket handshakes: an `Origin` (every browser sends one) must be one of
    ALLOWED_HOSTS, else 403 -- a foreign page cannot ride a viewer's cookies.
    No `Origin` at all is a native client (OkHttp, URLSession, `websockets`,
    `ws`): let in, and dispatcher/auth.py ignores its cookies (token only)."""

    def __init__(self, application):
        from channels.security.websocket import AllowedHostsOriginValidator

        self.application = application
        self.browser_check = AllowedHostsOriginValidator(application)

    async def __call__(self, scope, receive, send):
        headers = scope.get("headers", [])
        if any(name != name.lower() for name, _ in headers):
            # ASGI names are lower case, but the sign-in reads them in any case:
            # check the same Origin it would see.
            scope = {**scope, "headers": [(name.lower(), value) for name, value in headers]}
        if any(name == b"origin" for name, _ in scope.get("headers", [])):
            return await self.browser_check(scope, receive, send)
        return await self.application(scope, receive, send)
