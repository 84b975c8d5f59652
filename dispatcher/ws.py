"""ws://…/ws/videos/<id>/ -- the WebSocket fallback (docs/realtime.md).

Same events as the SSE stream, as JSON text frames {"event", "id", "data"};
`?last_event_id=` resumes (accepted first, then the catch-up is sent page
by page, `streams.catch_up`). A signed-in client may also post:
{"action": "post", "text": "...", "idempotency_key": "...", "ref": "..."},
answered with {"event": "ack", "ref", "data": <comment>} or
{"event": "error", "ref", "error": {"code", "message"}} -- the REST API's
error object.
"""

from __future__ import annotations

import json
import logging
import time

from channels.generic.websocket import AsyncWebsocketConsumer

from dispatcher import hooks, streams
from dispatcher.auth import run_sync
from dispatcher.connections import WebSocketConnection
from dispatcher.frames import Frame
from dispatcher.hub import get_hub
from dispatcher.protocol import (
    ACK_EVENT,
    CLOSE_CODES,
    DEFAULT_CLOSE_CODE,
    ERROR_EVENT,
    MAX_MESSAGE_BYTES,
    POST_ACTION,
    POST_FIELDS,
)
from livecomment.lib import limits, metrics, parsers
from livecomment.lib.errors import ServiceError, Unavailable
from livecomment.lib.logging_config import request_id_from_scope
from livecomment.lib.parsers import strict_body
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)

# A catch-up page is read once the socket holds at most this much of the one before.
CATCHUP_BUFFER_BYTES = 64 * 1024

# MAX_MESSAGE_BYTES, POST_FIELDS, CLOSE_CODES: the protocol (dispatcher/protocol.py, in the AsyncAPI document too).


class VideoSocketConsumer(streams.ReleasesStreamSlot, AsyncWebsocketConsumer):
    channel_layer_alias = "__none__"
    connection: WebSocketConnection | None = None
    request: streams.StreamRequest | None = None
    request_id = ""
    opened_at = 0.0

    async def connect(self):
        video_id = int(self.scope["url_route"]["kwargs"]["video_id"])
        self.request_id = request_id_from_scope(self.scope)
        try:
            self.stream_slot = limits.open_stream_slot(self.scope)  # 4429 past MAX_STREAMS_PER_IP
            self.request, connection, sub = await streams.open_stream(
                self.scope,
                video_id,
                lambda request: WebSocketConnection(
                    self.base_send, video_id, moderator=request.moderator, on_close=self._closed_by_hub
                ),
            )
            self.connection = connection
        except ServiceError as exc:
            await self._refuse(exc)
            return
        except UNAVAILABLE_ERRORS:
            await self._refuse(Unavailable("redis"))
            return
        # Accept first: a long catch-up is paged after the handshake, not inside it.
        await self.accept(headers=[(b"x-request-id", self.request_id.encode())])
        try:
            target = sub.last_position
            first = await streams.read_backlog(self.request)
            written = await streams.catch_up(self.request, connection, sub, first, target, self._write_page)
        except ServiceError as exc:
            await self._refuse(exc, accepted=True)
            return
        except UNAVAILABLE_ERRORS:
            await self._refuse(Unavailable("redis"), accepted=True)
            return
        self.opened_at = time.monotonic()
        streams.log_open("ws", video_id, self.request_id, self.request.last_event_id is not None, written)

    async def _write_page(self, events) -> None:
        connection = self.connection
        for event in events:
            if connection is None or connection.closed:
                return
            await self.base_send({"type": "websocket.send", "text": Frame.from_stream(event).ws})
        if connection is not None:
            await connection.wait_for_buffer_below(CATCHUP_BUFFER_BYTES)

    async def _refuse(self, error: ServiceError, accepted: bool = False) -> None:
        if self.stream_slot is not None:
            self.stream_slot.release()
        streams.log_refused("ws", self.scope, self.request_id, error)
        if self.connection is not None:
            get_hub().unsubscribe(self.connection)
            self.connection = None
        # Accept, say why, close: a browser cannot read an HTTP 403's body.
        if not accepted:
            await self.accept()
        await self.send(text_data=json.dumps({"event": ERROR_EVENT, **error.as_dict()}))
        await self.close(code=CLOSE_CODES.get(error.status, DEFAULT_CLOSE_CODE))

    def _closed_by_hub(self, connection, reason: str) -> None:
        streams.closed_by_hub(connection, reason)

    async def disconnect(self, code):
        if self.stream_slot is not None:
            self.stream_slot.release()
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.stop()
            get_hub().unsubscribe(connection)
        if connection is not None and self.opened_at:
            streams.log_close("ws", connection, self.request_id, self.opened_at, code=code)

    async def receive(self, text_data=None, bytes_data=None):
        ref = None
        try:
            if text_data is None or len(text_data) > MAX_MESSAGE_BYTES:
                raise ServiceError("invalid_message", f"Send JSON text frames of at most {MAX_MESSAGE_BYTES} bytes.")
            try:
                message = parsers.loads(text_data)
            except ValueError:  # malformed or nested too deeply
                raise ServiceError("invalid_json", "The frame is not valid JSON.") from None
            if not isinstance(message, dict):
                raise ServiceError("invalid_message", 'Send an object like {"action": "post", "text": "..."}.')
            ref = message.get("ref")
            if message.get("action") != POST_ACTION:
                raise ServiceError("unknown_action", 'The only action is "post".')
            strict_body(message, POST_FIELDS, "The message")
            if "text" not in message:
                raise ServiceError("missing_text", 'The message needs a "text" field.')
            answer = await run_sync(self._post, message.get("text"), message.get("idempotency_key"))
            # the handler (comments.accept) has counted it in the metrics
            reply = (
                {"event": ACK_EVENT, "ref": ref, "data": answer.body}
                if answer.ok
                else {"event": ERROR_EVENT, "ref": ref, **answer.body}
            )
        except ServiceError as exc:
            reply = {"event": ERROR_EVENT, "ref": ref, **exc.as_dict()}
            metrics.comment_rejected(exc.code, "ws")
        self._reply(reply)

    def _post(self, text, idempotency_key):
        if self.request is None:
            raise ServiceError("not_connected", "Not connected.", 400)
        post = hooks.post_handler()
        return post(self.request.video, self.request.user, text, idempotency_key, limits.scope_meta(self.scope))

    def _reply(self, reply: dict) -> None:
        text = json.dumps(reply, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate the client sent (in "ref"): escape it, or the socket breaks
            text = json.dumps(reply)
        if self.connection is not None:
            self.connection.send_now({"type": "websocket.send", "text": text})
