"""GET /api/v1/videos/<id>/stream -- Server-Sent Events (docs/realtime.md).

A thin consumer: authorise and register in `http_request`, write the backlog,
then hand the connection to the hub, which writes every live frame straight
to the server's `send`. The consumer returns to its receive loop at once, so
it sees `http.disconnect` the moment the client goes (channels#1302: a
`handle()` that loops to stream never would).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer

from dispatcher import streams
from dispatcher.connections import SSEConnection
from dispatcher.frames import SSE_PADDING, Frame
from dispatcher.hub import get_hub
from livecomment import limits
from livecomment.errors import ServiceError, Unavailable
from livecomment.logging_config import request_id_from_scope
from livecomment.redis_client import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class StreamConsumer(streams.ReleasesStreamSlot, AsyncHttpConsumer):
    # No channel-layer channel per viewer: the hub receives for the process.
    channel_layer_alias = "__none__"
    connection: SSEConnection | None = None
    request_id = ""
    opened_at = 0.0

    async def http_request(self, message):
        if "body" in message:
            self.body.append(message["body"])
        if message.get("more_body"):
            return
        self.request_id = request_id_from_scope(self.scope)
        try:
            await self.open()
        except ServiceError as exc:
            await self.refuse(exc)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("stream open failed: %s", exc)
            await self.refuse(Unavailable("redis"))

    async def open(self) -> None:
        if self.scope["method"] not in ("GET", "HEAD"):
            raise ServiceError("method_not_allowed", "Use GET.", 405)
        self.stream_slot = limits.open_stream_slot(self.scope)  # 429 past MAX_STREAMS_PER_IP
        video_id = int(self.scope["url_route"]["kwargs"]["video_id"])
        request = await streams.prepare(self.scope, video_id)
        hub = get_hub()
        if hub.draining:
            raise Unavailable("gateway")
        connection = SSEConnection(self.base_send, video_id, moderator=request.moderator, on_close=self._closed_by_hub)
        self.connection = connection
        sub = await hub.subscribe(video_id, connection)
        try:
            backlog = await streams.read_backlog(request)
        except BaseException:
            hub.unsubscribe(connection)
            self.connection = None
            raise
        from django.conf import settings

        parts = [SSE_PADDING, b"retry: %d\n\n" % settings.REALTIME_RETRY_MS]
        parts.extend(Frame.from_stream(event).sse for event in backlog.events)
        if sub.viewers_frame is not None:
            parts.append(sub.viewers_frame.sse)
        await self.send_headers(status=200, headers=[*SSE_HEADERS, (b"x-request-id", self.request_id.encode())])
        await self.send_body(b"".join(parts), more_body=True)
        if backlog.events:
            connection.last_id = backlog.events[-1].id
        connection.start(backlog.last_position)
        self.opened_at = time.monotonic()
        log.info("stream open", extra={"event": "stream.open", "transport": "sse", "video": video_id,
                                       "request_id": self.request_id, "resume": request.last_event_id is not None,
                                       "backlog": len(backlog.events)})

    async def refuse(self, error: ServiceError) -> None:
        if self.stream_slot is not None:
            self.stream_slot.release()
        log.info("stream refused", extra={"event": "stream.refused", "transport": "sse", "status": error.status,
                                          "code": error.code, "path": self.scope.get("path", ""),
                                          "request_id": self.request_id})
        headers = [(b"content-type", b"application/json"), (b"x-request-id", self.request_id.encode())]
        headers += [(k.lower().encode(), str(v).encode()) for k, v in error.headers.items()]
        await self.send_response(error.status, json.dumps(error.as_dict()).encode(), headers=headers)

    def _closed_by_hub(self, connection: SSEConnection, reason: str) -> None:
        streams.closed_by_hub(connection, reason)
        if connection.probe is None:  # cannot abort the socket: end the response instead
            asyncio.ensure_future(self.send_body(b"", more_body=False))

    async def http_disconnect(self, message):
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.closed = True
            get_hub().unsubscribe(connection)
        if connection is not None and self.opened_at:
            log.info("stream close", extra={"event": "stream.close", "transport": "sse", "video": connection.video_id,
                                            "request_id": self.request_id, "reason": connection.close_reason or "client",
                                            "duration_ms": round((time.monotonic() - self.opened_at) * 1000),
                                            "last_event_id": connection.last_id})
        raise StopConsumer()
