"""Abuse limits below the REST API: client IPs, concurrent streams per IP, request body and header size.

* `loopback_client()` -- who may read the operators' endpoints.
* `client_ip()` -- the address a limit counts, with `NUM_PROXIES` applied the
  way DRF's throttles apply it (so the per-IP throttles of the API and the
  stream limit here agree on who a client is).
* `open_stream_slot()` -- at most `MAX_STREAMS_PER_IP` concurrent SSE and
  WebSocket streams per client IP, counted in this gateway process (exact,
  no Redis round trip per open, nothing to leak when a process dies). With
  N gateway processes behind a load balancer an IP can hold up to N times
  the limit; set it per process.
* `open_long_poll_slot()` -- at most `MAX_LONG_POLLS_PER_USER` waiting
  long-polls per signed-in user and `MAX_LONG_POLLS_PER_IP` per client IP,
  counted the same way (per process).
* `BodyLimitMiddleware` -- an ASGI middleware in front of everything HTTP:
  a request whose `Content-Length` is over `MAX_REQUEST_BODY_BYTES` gets a
  413 JSON error *before its body is read* (Django's ASGI handler reads the
  whole body into a temporary file before any Django middleware or view
  runs, so DATA_UPLOAD_MAX_MEMORY_SIZE alone only answers once it is all
  in); a chunked body is counted as it arrives and cut off past the limit.
  Under uvicorn the app sees a request as soon as its headers are in, so
  nothing more is read. Daphne (Twisted) receives the whole body itself
  before calling the app; put a proxy limit (nginx `client_max_body_size`)
  in front of Daphne.
* `HeaderLimitMiddleware` -- request line and headers over
  `MAX_REQUEST_HEADER_BYTES`: 431 (a WebSocket handshake: 403), HTTP and
  WebSocket alike.

Loopback addresses (`RATE_LIMIT_EXEMPT_IPS`) are exempt from the per-IP
limits: they are the machine itself -- a local proxy whose `NUM_PROXIES`
is not set, the benchmark, the tests' gateways -- and limiting them would
limit everyone behind that proxy at once.
"""

from __future__ import annotations

import json

from django.conf import settings

# livecomment.lib.errors imports DRF's views, which import the throttles, which
# import this module: errors are imported where they are used.


def client_ip(remote_addr: str | None, forwarded_for: str | None) -> str:
    """The client's address: REMOTE_ADDR, or with NUM_PROXIES > 0 the entry of
    X-Forwarded-For that the nearest trusted proxy added (DRF's get_ident)."""
    num_proxies = settings.NUM_PROXIES
    if num_proxies > 0 and forwarded_for:
        addrs = [a.strip() for a in forwarded_for.split(",")]
        return addrs[-min(num_proxies, len(addrs))]
    return remote_addr or ""


def scope_client_ip(scope) -> str:
    client = scope.get("client")
    remote = client[0] if client else ""
    forwarded = None
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            forwarded = value.decode("latin-1")
    return client_ip(remote, forwarded)


def scope_meta(scope) -> dict:
    """The two META keys DRF's throttles read, for a request that is not Django's
    (a WebSocket message)."""
    meta = {"REMOTE_ADDR": (scope.get("client") or ("",))[0]}
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            meta["HTTP_X_FORWARDED_FOR"] = value.decode("latin-1")
    return meta


def is_exempt(ip: str) -> bool:
    return ip in settings.RATE_LIMIT_EXEMPT_IPS


def _is_loopback(address: str) -> bool:
    return address in ("127.0.0.1", "::1", "localhost") or address.startswith(("127.", "::ffff:127."))


def loopback_client(scope) -> bool:
    """Is the client this machine, and not an outside client forwarded by a
    proxy on it? The rule of the operators' endpoints (/metrics, /gateway/stats).
    The server does not rewrite the client from X-Forwarded-For (no
    --proxy-headers), so a local proxy would look like loopback: every hop
    it names must be loopback too."""
    client = (scope.get("client") or ("", 0))[0] or ""
    if not _is_loopback(client):
        return False
    for name, value in scope.get("headers") or ():
        if name == b"x-forwarded-for":
            hops = [h.strip() for h in value.decode("latin-1").split(",") if h.strip()]
            if not all(_is_loopback(h) for h in hops):
                return False
    return True


# -- concurrent streams per IP, waiting long-polls per user and per IP ---------------


class Slot:
    """What one open stream or waiting long-poll counts (keys in a counts
    dict); release() gives it back, once."""

    __slots__ = ("counts", "keys")

    def __init__(self, counts: dict, keys: tuple = ()):
        self.counts = counts
        self.keys = keys

    def release(self) -> None:
        keys, self.keys = self.keys, ()
        for key in keys:
            left = self.counts.get(key, 0) - 1
            if left > 0:
                self.counts[key] = left
            else:
                self.counts.pop(key, None)


StreamSlot = Slot

# ip -> open streams of this process; ("user", id) / ("ip", ip) -> waiting
# long-polls. Only touched on the event loop (the consumers' connect and
# disconnect, the long-poll view's wait), so no lock.
_open_streams: dict[str, int] = {}
_waiting_polls: dict[tuple[str, object], int] = {}

_UNCOUNTED = Slot({})


def _refuse_slot(code: str, message: str):
    from livecomment.lib.errors import ServiceError

    return ServiceError(code, message, 429, headers={"Retry-After": "5"}, retry_after=5)


def open_stream_slot(scope) -> Slot:
    """Count a new stream against its client IP, or refuse it (429)."""
    limit = settings.MAX_STREAMS_PER_IP
    if not limit:
        return _UNCOUNTED
    ip = scope_client_ip(scope)
    if not ip or is_exempt(ip):
        return _UNCOUNTED
    count = _open_streams.get(ip, 0)
    if count >= limit:
        raise _refuse_slot(
            "too_many_streams", f"Too many open streams from your address (at most {limit}); close one first."
        )
    _open_streams[ip] = count + 1
    return Slot(_open_streams, (ip,))


def open_streams(ip: str) -> int:
    """Streams this process counts for an IP (tests, stats)."""
    return _open_streams.get(ip, 0)


def open_long_poll_slot(user_id: int | None, ip: str) -> Slot:
    """Count a long-poll that is about to wait against its user (signed in)
    and its client IP (any user; not loopback), or refuse it (429). Per
    process, like the stream limit: N gateway processes allow N times this."""
    keys = []
    user_limit, ip_limit = settings.MAX_LONG_POLLS_PER_USER, settings.MAX_LONG_POLLS_PER_IP
    if user_id is not None and user_limit:
        if _waiting_polls.get(("user", user_id), 0) >= user_limit:
            raise _refuse_slot(
                "too_many_long_polls",
                f"Too many waiting long-polls for your account (at most {user_limit}); let one end first.",
            )
        keys.append(("user", user_id))
    if ip and ip_limit and not is_exempt(ip):
        if _waiting_polls.get(("ip", ip), 0) >= ip_limit:
            raise _refuse_slot(
                "too_many_long_polls",
                f"Too many waiting long-polls from your address (at most {ip_limit}); let one end first.",
            )
        keys.append(("ip", ip))
    for key in keys:
        _waiting_polls[key] = _waiting_polls.get(key, 0) + 1
    return Slot(_waiting_polls, tuple(keys))


# -- request body size ---------------------------------------------------------------


class BodyTooLarge(Exception):
    pass


def _too_large_response(limit: int) -> tuple[dict, dict]:
    from livecomment.lib.errors import error_body

    body = json.dumps(
        error_body("body_too_large", f"The request body is too large (at most {limit} bytes).", max_bytes=limit)
    ).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimitMiddleware:
    """Refuse HTTP request bodies over MAX_REQUEST_BODY_BYTES with a 413 JSON
    error, by Content-Length before reading, or while counting a chunked body."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        limit = settings.MAX_REQUEST_BODY_BYTES if scope["type"] == "http" else 0
        if not limit:
            return await self.app(scope, receive, send)
        length = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None  # the server refuses these itself
            elif name == b"transfer-encoding":
                chunked = True
        if (
            length is None
            and not chunked
            and scope.get("method") in ("GET", "HEAD")
            and scope.get("http_version") in ("1.0", "1.1")
        ):
            # An HTTP/1 request with neither header has no body (RFC 9112 6.3),
            # so an SSE GET needs no counting wrapper, which would otherwise
            # stay suspended in receive() for the stream's lifetime. (HTTP/2
            # bodies need no Content-Length: those are still counted.)
            return await self.app(scope, receive, send)
        if length is not None:
            if length > limit:
                await self._refuse(send, limit)
                return
            # The server never delivers more than Content-Length: nothing to count.
            return await self.app(scope, receive, send)

        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:
            # Every consumer here reads the whole body before it answers,
            # so nothing has been sent yet.
            await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send, limit: int) -> None:
        start, body = _too_large_response(limit)
        await send(start)
        await send(body)


class HeaderLimitMiddleware:
    """Refuse a request or WebSocket handshake whose request line and headers
    come to more than MAX_REQUEST_HEADER_BYTES: 431 with a JSON error, or a
    refused handshake (403). uvicorn's httptools parser takes headers of any
    size; Daphne (Twisted) drops a connection past ~16 KiB on its own."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            limit = settings.MAX_REQUEST_HEADER_BYTES
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
            size += sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
        return await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope, receive, send, limit: int) -> None:
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return
        from livecomment.lib.errors import error_body

        message = f"The request headers are too large (at most {limit} bytes)."
        body = json.dumps(error_body("headers_too_large", message, max_bytes=limit)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 431, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
