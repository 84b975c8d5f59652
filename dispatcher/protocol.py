"""The WebSocket protocol's constants and message shapes: what dispatcher/ws.py
accepts and answers, and what the AsyncAPI document (livecomment/asyncapi.py)
says about it -- one definition for both.

Server -> client frames are {"event": <type>, "id": <position>, "data": {...}}
(the event types: comments.events.EVENT_TYPES; `viewers` and `ping` without
`id`) and the answers below; client -> server frames are actions.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

# A client frame: a JSON object of at most this many bytes (and 32 levels, livecomment/lib/parsers.py).
MAX_MESSAGE_BYTES = 16 * 1024

POST_ACTION = "post"
ACTIONS = (POST_ACTION,)  # the only action there is
# The keys of a "post" message; any other is refused (unknown_fields).
POST_FIELDS = ("action", "text", "idempotency_key", "ref")

PING_EVENT, ACK_EVENT, ERROR_EVENT = "ping", "ack", "error"

# Close codes in the application range: 4000 + the HTTP status of the refusal.
CLOSE_CODES = {401: 4401, 403: 4403, 404: 4404, 400: 4400, 429: 4429, 503: 4503}
DEFAULT_CLOSE_CODE = 4000
CLOSE_REASONS = {
    4400: "bad request at connect (e.g. an invalid last_event_id)",
    4401: "the token is not valid",
    4403: "not allowed to read this video",
    4404: "no such video, or no WebSocket route at this path",
    4429: "too many streams open from this address (MAX_STREAMS_PER_IP)",
    4503: "Redis or the database is unavailable, the gateway is shutting down, or the client fell too far "
    "behind: reconnect with last_event_id",
    1008: "the handshake's headers are too large (MAX_REQUEST_HEADER_BYTES)",
}

# Error codes of the frame itself; a post is also answered with every error code the REST API's POST can return.
MESSAGE_ERRORS = {
    "invalid_message": "not a JSON object, or a binary frame, or larger than MAX_MESSAGE_BYTES",
    "invalid_json": "not valid JSON, or nested more than 32 levels",
    "unknown_action": 'the only action is "post"',
    "unknown_fields": "a post message holds only action, text, idempotency_key and ref",
    "missing_text": 'a post message needs "text"',
    "not_connected": "the socket has not finished connecting",
}


class PostMessage(TypedDict):
    """Post a comment (signed-in clients): answered by an `ack` or an `error` frame with the same `ref`."""

    action: Literal["post"]
    text: str
    idempotency_key: NotRequired[str]  # as the REST API's Idempotency-Key header: a retry is answered, not re-posted
    ref: NotRequired[str]  # echoed in the answer


class PingFrame(TypedDict):
    """A keep-alive every REALTIME_HEARTBEAT_SECONDS; ignore it."""

    event: Literal["ping"]


class ErrorDetail(TypedDict):
    """The REST API's error object (livecomment/lib/errors.py) with the details a post's refusal can carry."""

    code: str
    message: str
    retry_after: NotRequired[int]  # seconds: slow mode, throttles, a timeout (ban)
    fields: NotRequired[list[str]]  # unknown_fields: the names refused
    max_length: NotRequired[int]  # too_long
    ends_at: NotRequired[str | None]  # banned: when the timeout ends (null: for good)


class ErrorFrame(TypedDict):
    """A refused action (with its `ref`) or a refused connection (no `ref`, then the socket closes)."""

    event: Literal["error"]
    ref: NotRequired[object]  # the action's `ref` as sent; null when it had none
    error: ErrorDetail
