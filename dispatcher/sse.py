"""GET /api/v1/videos/<id>/stream -- Server-Sent Events (docs/realtime.md).

A bare ASGI application, not a Channels consumer: an idle stream is held by
tens of thousands of clients at once, so what each one keeps alive is
counted in bytes. Per open stream there is the server's request task, one
coroutine frame of `serve()` waiting for `http.disconnect`, and the hub's
`SSEConnection`. No consumer instance, no second task and `asyncio.wait`
per connection (Channels' `await_many_dispatch`), no channel, no thread hop
per message (`aclose_old_connections`), and no reference to the request's
scope once the stream is live (the router's copy of it, with the URL route,
is freed then; the server keeps its own).

1. authorise and register (`dispatcher/streams.py`), 4xx/503 as JSON before
   anything is streamed;
2. write the backlog page by page (`streams.catch_up`), then hand the
   connection to the hub, which writes every live frame straight to the
   server's `send` (or transport);
3. wait for `http.disconnect`, which arrives the moment the client goes
   (channels#1302: a handler that loops to stream never would see it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from django.conf import settings

from dispatcher import streams
from dispatcher.connections import SSEConnection
from dispatcher.frames import SSE_PADDING, Frame, sse_retry
from dispatcher.hub import get_hub
from livecomment.lib import limits
from livecomment.lib.errors import ServiceError, Unavailable
from livecomment.lib.logging_config import request_id_from_scope
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

# A catch-up page is read once the socket holds at most this much of the one before.
CATCHUP_BUFFER_BYTES = 64 * 1024


class CatchUpFailed(Exception):
    """Reading a catch-up page failed after the answer started (it was ended)."""


# Any site's page may read the stream (EventSource sends Last-Event-ID without
# a preflight). `*` and no Allow-Credentials: a browser never lets another
# site read a stream opened with this site's cookies, only one opened with a
# token that page holds itself (`?token=`), or anonymously.
CORS_HEADERS = [(b"access-control-allow-origin", b"*")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
    *CORS_HEADERS,
]


class SSEEndpoint:
    """The SSE endpoint. `SSEEndpoint.as_asgi()` is the ASGI application
    (the name and call shape of a Channels consumer, for the routes)."""

    __slots__ = ()

    @classmethod
    def as_asgi(cls):
        # A plain function returning the coroutine: it keeps no frame of its own.
        def app(scope, receive, send):
            return serve(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]  # like the apps of Channels' as_asgi()
        return app


async def serve(scope, receive, send) -> None:
    """One SSE request, from its first message to the client's disconnect."""
    message = await receive()
    while message["type"] == "http.request" and message.get("more_body"):
        message = await receive()  # a body is read and ignored
    if message["type"] != "http.request":
        return  # gone before it was answered
    request_id = request_id_from_scope(scope)
    slot = None
    connection = None
    try:
        try:
            if scope["method"] not in ("GET", "HEAD"):
                raise ServiceError("method_not_allowed", "Use GET.", 405)
            slot = limits.open_stream_slot(scope)  # 429 past MAX_STREAMS_PER_IP
            # In a task of its own, i.e. a copy of this task's context: what the
            # worker threads of the open leave in it (asgiref copies their
            # context variables back, Django's connection storage) goes with it.
            connection, resumed, backlog_len = await asyncio.ensure_future(_open(scope, send, request_id))
        except CatchUpFailed:
            return
        except ServiceError as exc:
            await _refuse(scope, send, request_id, slot, exc)
            return
        except UNAVAILABLE_ERRORS as exc:
            log.warning("stream open failed: %s", exc)
            await _refuse(scope, send, request_id, slot, Unavailable("redis"))
            return
        video_id = connection.video_id
        del scope, message  # live: nothing of the request is kept
        opened_at = time.monotonic()
        streams.log_open("sse", video_id, request_id, resumed, backlog_len)
        while (await receive())["type"] != "http.disconnect":
            pass
        connection.stop()
        get_hub().unsubscribe(connection)
        streams.log_close("sse", connection, request_id, opened_at)
    finally:
        if connection is not None and not connection.closed:  # cancelled, or the server failed
            connection.stop()
            get_hub().unsubscribe(connection)
        if slot is not None:
            slot.release()


async def _open(scope, send, request_id: str) -> tuple[SSEConnection, bool, int]:
    """Authorise, register with the hub, write the backlog page by page, go live."""
    video_id = int(scope["url_route"]["kwargs"]["video_id"])
    request, connection, sub = await streams.open_stream(
        scope,
        video_id,
        lambda request: SSEConnection(send, video_id, moderator=request.moderator, on_close=_closed_by_hub),
    )
    hub = get_hub()
    try:
        target = sub.last_position
        first = await streams.read_backlog(request)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*SSE_HEADERS, (b"x-request-id", request_id.encode())],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": SSE_PADDING + sse_retry(settings.REALTIME_RETRY_MS),
                "more_body": True,
            }
        )
    except BaseException:
        connection.stop()
        hub.unsubscribe(connection)
        raise

    async def write(events) -> None:
        body = b"".join([Frame.from_stream(event).sse for event in events])
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await connection.wait_for_buffer_below(CATCHUP_BUFFER_BYTES)

    try:
        written = await streams.catch_up(request, connection, sub, first, target, write)
    except (ServiceError, *UNAVAILABLE_ERRORS) as exc:
        # The answer has started: end it; the client resumes from the last id it got.
        log.warning("catch-up of video %s failed: %s", video_id, exc)
        connection.stop()
        hub.unsubscribe(connection)
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # noqa: BLE001 - the client is gone already
            pass
        raise CatchUpFailed from exc
    except BaseException:
        connection.stop()
        hub.unsubscribe(connection)
        raise
    return connection, request.last_event_id is not None, written


async def _refuse(scope, send, request_id: str, slot, error: ServiceError) -> None:
    if slot is not None:
        slot.release()
    streams.log_refused("sse", scope, request_id, error)
    headers = [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode()), *CORS_HEADERS]
    headers += [(k.lower().encode(), str(v).encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(error.as_dict()).encode(), "more_body": False})


def _closed_by_hub(connection: SSEConnection, reason: str) -> None:
    streams.closed_by_hub(connection, reason)
    if connection.probe is None:  # cannot abort the socket: end the response instead
        asyncio.ensure_future(connection.end())
