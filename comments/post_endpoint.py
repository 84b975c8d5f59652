"""POST /api/v1/videos/<id>/comments/ from token clients, served in front of Django.

Posting is the one API request a big event sends thousands of times a
second, and Django's request cycle with DRF's view around it cost more CPU
than the write itself (docs/BENCHMARKS.md, "The write path"). This ASGI app
takes the common case -- `Authorization: Token ...`, a JSON object with a
"text" -- parses it on the event loop and hands it to the group commit
(comments/group_commit.py), which writes it together with the other comments
that arrived meanwhile, through the same write path as every other post
(`comments.services.post_comments`). The answer is the one DRF's view gives:
the same status, body and headers (tests/test_post_endpoint.py compares them).

Everything else goes to Django unchanged, body included: other methods and
paths, session (cookie) authentication with its CSRF check, bodies that are
not a JSON object of exactly "text" (Django's parser and view answer those), a query
string, an Accept or Content-Type other than JSON, a host Django would
refuse, a token that names no active user (Django answers the 401), a plain
HTTP request where HTTPS is required. POST_GROUP_COMMIT=0 turns this off.
"""

from __future__ import annotations

import logging
import re
import time

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from rest_framework.renderers import JSONRenderer

from comments import group_commit
from comments.api import comment_json
from comments.services import PostResult
from livecomment import metrics, parsers
from livecomment.authentication import could_be_token
from livecomment.errors import ServiceError, error_body
from livecomment.logging_config import REQUEST_ID, clean_request_id

log = logging.getLogger("livecomment.request")

PATH = re.compile(r"^/api/v1/videos/([0-9]{1,18})/comments/$")
ROUTE = "api-comments"  # the URL's name (livecomment/urls.py), for the request metrics and log
# What DRF's view says it allows (its `Allow` header).
ALLOW = b"GET, POST, HEAD, OPTIONS"
JSON_TYPES = {"*/*", "application/*", "application/json"}

_render = JSONRenderer().render


class PostEndpoint:
    """ASGI app: comment POSTs it can take, else `app` (Django)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not settings.POST_GROUP_COMMIT:
            return await self.app(scope, receive, send)
        match = PATH.match(scope["path"])
        head = _ours(scope) if match is not None and not scope.get("query_string") else None
        if match is None or head is None:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        request = _parse(body, head, scope)
        if request is None:
            return await self.app(scope, _replay(body, receive), send)
        request_id = clean_request_id(head.get("x-request-id"))
        token = REQUEST_ID.set(request_id)
        try:
            answer = await group_commit.submit(int(match.group(1)), request)
            if answer is group_commit.NOT_AUTHENTICATED:
                return await self.app(scope, _replay(body, receive), send)
            status, data, headers = _response(answer)
            await _send(send, status, _render(data), headers, request_id)
            _account(scope, status, started, request_id)
        finally:
            REQUEST_ID.reset(token)


def _ours(scope) -> dict[str, str] | None:
    """The request's headers when this endpoint takes it (so far as the
    headers tell), else None."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value  # as Django joins them
    token = _token(headers.get("authorization", ""))
    if token is None:
        return None
    content_type, _, params = headers.get("content-type", "").partition(";")
    if content_type.strip().lower() != "application/json":
        return None
    if params.strip() and params.strip().lower().replace(" ", "") not in ("charset=utf-8", 'charset="utf-8"'):
        return None
    accept = headers.get("accept")
    if accept is not None and not any(part.split(";")[0].strip().lower() in JSON_TYPES for part in accept.split(",")):
        return None
    if not _host_allowed(headers.get("host", "")) or (settings.SECURE_SSL_REDIRECT and not _is_secure(scope, headers)):
        return None
    if settings.USE_X_FORWARDED_HOST or settings.DISALLOWED_USER_AGENTS:
        return None  # what Django's middleware would weigh
    headers["token"] = token
    return headers


def _token(authorization: str) -> str | None:
    """The key of `Token <key>`, split as DRF's TokenAuthentication splits it:
    on bytes, where only ASCII whitespace separates (`Token\xa0<key>` is no
    token header to DRF, so not to us either)."""
    auth = authorization.encode("latin-1").split()
    if len(auth) != 2 or auth[0].lower() != b"token":
        return None
    try:
        key = auth[1].decode()
    except UnicodeError:
        return None
    return key if could_be_token(key) else None


def _host_allowed(host: str) -> bool:
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _is_secure(scope, headers: dict[str, str]) -> bool:
    if settings.SECURE_PROXY_SSL_HEADER:
        name, value = settings.SECURE_PROXY_SSL_HEADER
        name = name.removeprefix("HTTP_").replace("_", "-").lower()
        return headers.get(name, "").split(",")[0].strip() == value
    return scope.get("scheme") == "https"


async def _read_body(receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """`receive` for Django: the body already read, then the client's messages."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _parse(body: bytes, headers: dict[str, str], scope) -> group_commit.PostRequest | None:
    try:
        data = parsers.loads(body.decode("utf-8"))
    except ValueError:
        return None  # Django's parser says what is wrong
    if not isinstance(data, dict) or "text" not in data or len(data) != 1:
        return None  # Django's view answers (another field: 400 unknown_fields)
    client = scope.get("client")
    meta = {"REMOTE_ADDR": client[0] if client else ""}
    if "x-forwarded-for" in headers:
        meta["HTTP_X_FORWARDED_FOR"] = headers["x-forwarded-for"]
    return group_commit.PostRequest(headers["token"], data["text"], headers.get("idempotency-key"), meta)


def _response(answer) -> tuple[int, dict, dict]:
    if isinstance(answer, PostResult):
        metrics.comment_accepted("api", created=answer.created)
        return (201 if answer.created else 200), comment_json(answer.comment), {}
    if isinstance(answer, ServiceError):
        metrics.comment_rejected(answer.code, "api")
        return answer.status, answer.as_dict(), answer.headers
    # An exception of the write path (a bug): logged by the group commit.
    metrics.comment_rejected("server_error", "api")
    return 500, error_body("server_error", "Internal error; it has been logged."), {}


def _security_headers() -> list[tuple[bytes, bytes]]:
    """What Django's SecurityMiddleware and XFrameOptionsMiddleware add to an API answer."""
    headers = [(b"allow", ALLOW)]
    if settings.X_FRAME_OPTIONS:
        headers.append((b"x-frame-options", settings.X_FRAME_OPTIONS.upper().encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        value = policy if isinstance(policy, str) else ",".join(policy)
        headers.append((b"referrer-policy", value.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append((b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    return headers


async def _send(send, status: int, body: bytes, extra: dict, request_id: str) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_security_headers(),
        *((name.lower().encode("latin-1"), str(value).encode("latin-1")) for name, value in extra.items()),
        (b"x-request-id", request_id.encode("latin-1")),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _account(scope, status: int, started: float, request_id: str) -> None:
    """The request's metrics and log line, as livecomment/middleware.py makes them for Django's."""
    elapsed = time.perf_counter() - started
    metrics.REQUEST_LATENCY.labels("POST", ROUTE).observe(elapsed)
    metrics.REQUESTS.labels("POST", ROUTE, str(status)).inc()
    if settings.LOG_REQUESTS and log.isEnabledFor(logging.INFO):
        client = scope.get("client")
        log.info(
            "%s %s %s",
            "POST",
            scope["path"],
            status,
            extra={
                "event": "request",
                "method": "POST",
                "path": scope["path"],
                "route": ROUTE,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "request_id": request_id,
                "client": client[0] if client else "",
            },
        )
