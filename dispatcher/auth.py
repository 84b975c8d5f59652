"""Who is on the other end of a stream: token (?token=, or Authorization: Token / Bearer) or session cookie
(the cookie only from a browser: a WebSocket with an `Origin`, or an SSE request).

The real-time routes do not use Channels' AuthMiddlewareStack, whose session
wrapper would stand between the hub and the server's raw `send` (the hub
needs the raw one to detect a slow socket, dispatcher/connections.py).
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from importlib import import_module
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.contrib.auth.models import AnonymousUser
from django.db import close_old_connections
from django.utils.crypto import constant_time_compare


def headers_of(scope) -> dict[str, str]:
    """The headers by lower-case name; a repeated one is its values joined with
    "," as Django joins them, so that two Authorization headers are one the
    streams cannot read either (401), not the last one taken."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        # Without the whitespace around it (RFC 9110 5.5), which uvicorn keeps and Daphne drops.
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1").strip(" \t")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def query_of(scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def _user_for_token(key: str):
    from rest_framework.authtoken.models import Token

    if not (len(key) <= 40 and key.isascii() and key.isalnum()):
        return None  # cannot be a token (and PostgreSQL cannot compare a NUL)
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


def _user_for_session(session_key: str):
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    try:
        user_id = session[SESSION_KEY]
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return AnonymousUser()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return AnonymousUser()
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return AnonymousUser()
    if hasattr(user, "get_session_auth_hash"):
        stored = session.get(HASH_SESSION_KEY)
        if not stored or not constant_time_compare(stored, user.get_session_auth_hash()):
            return AnonymousUser()
    return user


class BadToken(Exception):
    pass


def _key_of(authorization: str) -> str | None:
    """The key of `Authorization: Token <key>` or `Bearer <key>` (split as the
    REST API splits it, on ASCII whitespace); None without the header. Any
    other scheme is a BadToken: never an anonymous stream for credentials
    that could not be read."""
    auth = authorization.encode("latin-1").split()
    if not auth:
        return None
    if len(auth) != 2 or auth[0].lower() not in (b"token", b"bearer"):
        raise BadToken()
    try:
        return auth[1].decode() or None
    except UnicodeError:
        raise BadToken() from None


def authenticate_scope(scope):
    """The user of a real-time request (sync; run it in a thread).

    A WebSocket without `Origin` is not a browser (livecomment/routing.py lets
    it in without the Origin check): its cookies are ignored and only a token
    signs it in, so a session cookie is only ever used behind that check."""
    close_old_connections()
    headers = headers_of(scope)
    from_header = _key_of(headers.get("authorization", ""))  # checked even beside ?token=
    raw_query = scope.get("query_string", b"").decode("latin-1")
    keys = {key for key in (*parse_qs(raw_query).get("token", []), from_header) if key}
    if len(keys) > 1:
        raise BadToken()  # credentials that disagree: neither is taken
    token = next(iter(keys), None)
    if token:
        user = _user_for_token(token)
        if user is None:
            raise BadToken()
        return user
    if scope.get("type") == "websocket" and "origin" not in headers:
        return AnonymousUser()
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header means no session
        return AnonymousUser()
    morsel = cookie.get(settings.SESSION_COOKIE_NAME)
    if morsel is None or not morsel.value:
        return AnonymousUser()
    return _user_for_session(morsel.value)


async def run_sync(func, *args, **kwargs):
    """Run blocking ORM/Redis work in the thread pool (not the one shared thread),
    closing stale database connections like Channels' database_sync_to_async."""
    return await database_sync_to_async(func, thread_sensitive=False)(*args, **kwargs)
