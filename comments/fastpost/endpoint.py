"""POST /api/v1/videos/<id>/comments/ from token clients, served in front of Django.

Posting is the one API request a big event sends thousands of times a
second, and Django's request cycle with DRF's view around it cost more CPU
than the write itself (docs/BENCHMARKS.md, "The write path"). This ASGI app
takes the common case -- `Authorization: Token ...`, a JSON object with a
"text" -- parses it on the event loop and hands it to the group commit
(comments/fastpost/batcher.py), which writes it together with the other comments
that arrived meanwhile, through the same edge of the write path as every other
post (`comments.accept.accept`). The answer is the one DRF's view gives:
the same status, body and headers (tests/test_post_endpoint.py compares them).
Its route is the URLconf's `api-comments`; its HTTP edge (hosts, TLS, security
headers, request id and log) is Django's, from livecomment/lib/http_edge.py.

Everything else goes to Django unchanged, body included: other methods and
paths, session (cookie) authentication with its CSRF check, bodies that are
not a JSON object of exactly "text" (Django's parser and view answer those), a query
string, an Accept or Content-Type other than JSON, a host Django would
refuse, a token that names no active user (Django answers the 401), a plain
HTTP request where HTTPS is required. POST_GROUP_COMMIT=0 turns this off.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

from django.conf import settings
from django.urls import get_resolver
from rest_framework.renderers import JSONRenderer

from accounts.authentication import SCHEMES, could_be_token
from comments.accept import Answer
from comments.fastpost import batcher
from livecomment.lib import http_edge, parsers
from livecomment.lib.http_edge import REQUEST_ID, clean_request_id

ROUTE = "api-comments"  # the URL's name: the route taken, and its label in the request metrics and log
# What DRF's view says it allows (its `Allow` header).
ALLOW = b"GET, POST, HEAD, OPTIONS"
JSON_TYPES = {"*/*", "application/*", "application/json"}

_render = JSONRenderer().render


@functools.cache
def route() -> tuple[re.Pattern, Any]:
    """The URLconf's pattern of ROUTE as a regex of the whole path, and the
    converter of its one argument (the video id)."""
    ((_, pattern, _, converters),) = get_resolver().reverse_dict.getlist(ROUTE)
    ((_, converter),) = converters.items()
    return re.compile("/" + pattern), converter


def video_id_of(path: str) -> int | None:
    """The video id of a path of ROUTE, else None (Django answers it)."""
    regex, converter = route()
    match = regex.match(path)
    if match is None:
        return None
    try:
        return converter.to_python(match.group(1))
    except ValueError:
        return None


class PostEndpoint:
    """ASGI app: comment POSTs it can take, else `app` (Django)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not settings.POST_GROUP_COMMIT:
            return await self.app(scope, receive, send)
        video_id = video_id_of(scope["path"])
        head = _ours(scope) if video_id is not None and not scope.get("query_string") else None
        if video_id is None or head is None:
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
            answer = await batcher.submit(video_id, request)
            if not isinstance(answer, Answer):  # an unknown token
                return await self.app(scope, _replay(body, receive), send)
            await _send(send, answer.status, _render(answer.body), answer.headers, request_id)
            client = scope.get("client")
            http_edge.account(
                "POST", scope["path"], ROUTE, answer.status, started, request_id, client[0] if client else ""
            )
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
    if not http_edge.host_allowed(headers.get("host", "")):
        return None
    if settings.SECURE_SSL_REDIRECT and not http_edge.is_secure(scope, headers):
        return None
    if not http_edge.takes_only_plain_requests():
        return None
    headers["token"] = token
    return headers


def _token(authorization: str) -> str | None:
    """The key of `Token <key>` or `Bearer <key>`, split as the API's
    TokenAuthentication splits it: on bytes, where only ASCII whitespace
    separates. Anything else is Django's to answer (401 for a scheme it
    cannot read)."""
    auth = authorization.encode("latin-1").split()
    if len(auth) != 2 or auth[0].lower() not in SCHEMES:
        return None
    try:
        key = auth[1].decode()
    except UnicodeError:
        return None
    return key if could_be_token(key) else None


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


def _parse(body: bytes, headers: dict[str, str], scope) -> batcher.PostRequest | None:
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
    return batcher.PostRequest(headers["token"], data["text"], headers.get("idempotency-key"), meta)


async def _send(send, status: int, body: bytes, extra: dict, request_id: str) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"allow", ALLOW),
        *http_edge.security_headers(),
        *((name.lower().encode("latin-1"), str(value).encode("latin-1")) for name, value in extra.items()),
        (b"x-request-id", request_id.encode("latin-1")),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
