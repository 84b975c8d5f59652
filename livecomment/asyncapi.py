"""The real-time half of the API as an AsyncAPI 3.0.0 document, served at /api/asyncapi.json.

Generated, not written: the event payloads are comments.events.EVENT_TYPES'
TypedDicts and the WebSocket's messages and close codes are
dispatcher.protocol's (JSON Schema from livecomment.lib.typedschema), so the
document changes with the code. Channels: the SSE stream and the WebSocket of
a video; operations: receive each event, send a `post` (reply: `ack` or
`error`). tests/test_asyncapi.py validates it with the official parser
(@asyncapi/parser) and checks the events the tests receive against it.

`openapi_stream_path` is a drf-spectacular hook: the SSE endpoint is no DRF
view, so the OpenAPI document gets it from here (a `text/event-stream` 200
that links this document).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import get_conditional_response
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from comments.events import EVENT_TYPES, EVERYONE, MODERATORS, CommentJson
from dispatcher import protocol
from livecomment.lib.errors import ERROR_CODES
from livecomment.lib.typedschema import typed_dict_schema

PATH = "/api/asyncapi.json"
SSE_ADDRESS = "/api/v1/videos/{video_id}/stream"
WS_ADDRESS = "/ws/videos/{video_id}/"
POSITION = {
    "type": "string",
    "pattern": "^[0-9]{1,13}-[0-9]{1,6}$",
    "description": "A stream position (the event's id; a comment's cursor).",
    "examples": ["1764000000000-0"],
}
AUDIENCE_NAMES = {EVERYONE: "everyone", MODERATORS: "moderators of the video"}


def message_name(event_type: str) -> str:
    """`comment.removed` -> `commentRemoved`: a component key (AsyncAPI keys allow no dots)."""
    first, *rest = event_type.split(".")
    return first + "".join(part.capitalize() for part in rest)


class _Schemas:
    """components.schemas, filled as TypedDicts are met; nested ones become $refs."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Position": POSITION}

    def ref(self, cls: type) -> dict[str, str]:
        name = cls.__name__
        if name not in self.schemas:
            self.schemas[name] = {}  # reserved first: a recursive type ends here
            self.schemas[name] = typed_dict_schema(cls, self.ref)
        return {"$ref": f"#/components/schemas/{name}"}


def _audience(audiences: tuple[str, ...]) -> str:
    return " or ".join(AUDIENCE_NAMES[a] for a in audiences)


def build(host: str = "localhost:8000", secure: bool = False) -> dict[str, Any]:
    schemas = _Schemas()
    messages: dict[str, Any] = {}
    sse_messages: dict[str, Any] = {}
    ws_messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    for event_type, spec in EVENT_TYPES.items():
        name = message_name(event_type)
        payload = schemas.ref(spec.payload)
        resumable = "In the stream: has an id, resumed from." if spec.in_stream else "Live only: no id, not resumed."
        description = f"{spec.summary} Audience: {_audience(spec.audiences)}. {resumable}"
        sse = {
            "name": event_type,
            "title": f"SSE `event: {event_type}`",
            "summary": spec.summary,
            "description": f"{description} The SSE frame's `data:` is this payload as JSON"
            + (", its `id:` the event's position." if spec.in_stream else "; it has no `id:`."),
            "payload": payload,
        }
        if spec.in_stream:
            sse["headers"] = {
                "type": "object",
                "description": "The SSE frame's fields besides data.",
                "properties": {"id": {"$ref": "#/components/schemas/Position"}, "event": {"enum": [event_type]}},
                # The current pin a stream open sends first has no id.
                "required": ["event"] if spec.also_without_id else ["id", "event"],
            }
        messages[f"sse_{name}"] = sse
        properties: dict[str, Any] = {"event": {"type": "string", "enum": [event_type]}}
        if spec.in_stream:
            properties["id"] = {"$ref": "#/components/schemas/Position"}
        properties["data"] = payload
        frame = {
            "type": "object",
            "properties": properties,
            "required": [p for p in properties if not (p == "id" and spec.also_without_id)],
            "additionalProperties": False,
        }
        schemas.schemas[f"Ws_{name}"] = frame
        messages[f"ws_{name}"] = {
            "name": event_type,
            "title": f"WebSocket frame `{event_type}`",
            "summary": spec.summary,
            "description": description,
            "payload": {"$ref": f"#/components/schemas/Ws_{name}"},
        }
        sse_messages[name] = {"$ref": f"#/components/messages/sse_{name}"}
        ws_messages[name] = {"$ref": f"#/components/messages/ws_{name}"}
        for transport, channel in (("sse", "stream"), ("ws", "socket")):
            operations[f"{transport}_receive_{name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": f"Receive `{event_type}`",
                "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
            }

    # The WebSocket's own frames: ping, the post action and its answers.
    schemas.ref(protocol.PingFrame)
    schemas.ref(protocol.PostMessage)
    schemas.ref(protocol.ErrorFrame)
    # The same codes as the OpenAPI document's ErrorCode enum: one table for both.
    schemas.schemas["ErrorDetail"]["properties"]["code"]["enum"] = sorted(ERROR_CODES)
    schemas.schemas["AckFrame"] = {
        "type": "object",
        "description": "A post was accepted (or had been, for a retried idempotency_key).",
        "properties": {
            "event": {"type": "string", "enum": [protocol.ACK_EVENT]},
            "ref": {"description": "The post's `ref` as sent; null when it had none."},
            "data": schemas.ref(CommentJson),
        },
        "required": ["event", "ref", "data"],
        "additionalProperties": False,
    }
    error_codes = ", ".join(f"`{code}` ({why})" for code, why in protocol.MESSAGE_ERRORS.items())
    messages.update(
        {
            "ws_ping": {
                "name": protocol.PING_EVENT,
                "summary": "Keep-alive.",
                "payload": {"$ref": "#/components/schemas/PingFrame"},
            },
            "ws_post": {
                "name": protocol.POST_ACTION,
                "summary": "Post a comment (signed-in clients).",
                "description": f"A JSON text frame of at most {protocol.MAX_MESSAGE_BYTES} bytes holding only "
                f"{', '.join(protocol.POST_FIELDS)}.",
                "payload": {"$ref": "#/components/schemas/PostMessage"},
            },
            "ws_ack": {
                "name": protocol.ACK_EVENT,
                "summary": "The post was accepted.",
                "payload": {"$ref": "#/components/schemas/AckFrame"},
            },
            "ws_error": {
                "name": protocol.ERROR_EVENT,
                "summary": "A refused frame or post (with its ref), or a refused connection (then a close code).",
                "description": f"`error.code` is one of {error_codes}, or any error code of the REST API's "
                "comment POST (e.g. `slow_mode` with `retry_after`). At connect: the REST API's code for the "
                "refusal, then the socket closes (see the channel's close codes).",
                "payload": {"$ref": "#/components/schemas/ErrorFrame"},
            },
        }
    )
    for key in ("ping", "post", "ack", "error"):
        ws_messages[key] = {"$ref": f"#/components/messages/ws_{key}"}
    operations["ws_receive_ping"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/socket"},
        "summary": "Receive keep-alive pings",
        "messages": [{"$ref": "#/channels/socket/messages/ping"}],
    }
    operations["ws_receive_error"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/socket"},
        "summary": "Receive a refusal at connect (then the close code)",
        "messages": [{"$ref": "#/channels/socket/messages/error"}],
    }
    operations["ws_send_post"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/socket"},
        "summary": "Post a comment",
        "messages": [{"$ref": "#/channels/socket/messages/post"}],
        "reply": {
            "channel": {"$ref": "#/channels/socket"},
            "messages": [
                {"$ref": "#/channels/socket/messages/ack"},
                {"$ref": "#/channels/socket/messages/error"},
            ],
        },
    }

    close_codes = {str(code): why for code, why in sorted(protocol.CLOSE_REASONS.items())}
    close_text = "; ".join(f"{code}: {why}" for code, why in close_codes.items())
    video_id = {"description": "The video's id (an integer)."}
    token = {"type": "string", "description": "An API token (POST /api/v1/auth/token/); optional for reading."}
    last_event_id = {
        "$ref": "#/components/schemas/Position",
        "description": "Resume: exactly the events after this position.",
    }
    heartbeat = settings.REALTIME_HEARTBEAT_SECONDS
    scheme = "s" if secure else ""
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "livecomment real-time API",
            "version": settings.SPECTACULAR_SETTINGS["VERSION"],
            "description": "The live events of a video over Server-Sent Events or a WebSocket: the "
            "machine-readable contract of docs/realtime.md (section 3), generated from the code's payload "
            "definitions. The REST API is described at /api/schema/ (OpenAPI).",
        },
        "defaultContentType": "application/json",
        "servers": {
            "http": {"host": host, "protocol": f"http{scheme}", "description": "SSE stream"},
            "ws": {"host": host, "protocol": f"ws{scheme}", "description": "WebSocket"},
        },
        "channels": {
            "stream": {
                "address": SSE_ADDRESS,
                "title": "SSE stream of a video",
                "description": "GET with `Accept: text/event-stream`. Resume with the `Last-Event-ID` header "
                "or `?last_event_id=`; without it, the latest visible comments first. Authentication is "
                "optional (`Authorization: Token <key>`, `?token=`, or the session cookie); moderators also "
                f"receive moderator-only events. `: ping` comments every {heartbeat} s. Errors before "
                "streaming are JSON (404 unknown video, 400 bad Last-Event-ID, 401 bad token, 503).",
                "servers": [{"$ref": "#/servers/http"}],
                "parameters": {"video_id": video_id},
                "messages": sse_messages,
                "x-query": {"last_event_id": last_event_id, "token": token},
                "x-headers": {"Last-Event-ID": last_event_id, "Authorization": token},
            },
            "socket": {
                "address": WS_ADDRESS,
                "title": "WebSocket of a video",
                "description": "The same events as JSON text frames `{event, id, data}` (no `id` on viewers and "
                "pings), and the `post` action. Resume with `?last_event_id=`; sign in with `?token=` or "
                "`Authorization: Token <key>` (a handshake without Origin), or the session cookie (a browser; "
                "its Origin must be an allowed host, else HTTP 403). Close codes: " + close_text + ".",
                "servers": [{"$ref": "#/servers/ws"}],
                "parameters": {"video_id": video_id},
                "messages": ws_messages,
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "properties": {"last_event_id": last_event_id, "token": token},
                        },
                        "bindingVersion": "0.1.0",
                    }
                },
                "x-close-codes": close_codes,
            },
        },
        "operations": operations,
        "components": {"schemas": schemas.schemas, "messages": messages},
    }


@lru_cache(maxsize=8)
def _rendered(host: str, secure: bool) -> tuple[bytes, str]:
    body = json.dumps(build(host, secure), indent=1, sort_keys=False).encode()
    return body, '"%s"' % hashlib.sha256(body).hexdigest()[:32]


@csrf_exempt  # writes nothing: any other method is a 405, not a CSRF failure
@require_safe
def asyncapi_view(request):
    """GET (or HEAD) /api/asyncapi.json: anyone, cacheable, with an ETag
    (If-None-Match: 304, compared as RFC 9110 says -- weakly, `*` included)."""
    body, etag = _rendered(request.get_host(), request.is_secure())
    response = get_conditional_response(request, etag=etag)
    if response is None:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=300"
    return response


def openapi_stream_path(result, generator, request, public):
    """drf-spectacular hook: the SSE stream (an ASGI endpoint, no DRF view) in the OpenAPI document."""
    events = ", ".join(f"`{name}`" for name in EVENT_TYPES)
    parameter = {"in": "path", "name": "video_id", "required": True, "schema": {"type": "integer", "minimum": 0}}
    error = {"$ref": "#/components/schemas/Error"} if "Error" in result.get("components", {}).get("schemas", {}) else {}
    errors = {
        status: {"description": why, "content": {"application/json": {"schema": error}}}
        for status, why in (
            ("400", "Last-Event-ID is not a stream position."),
            ("401", "The token is not valid."),
            ("404", "No such video."),
            ("429", "Too many streams open from this address."),
            ("503", "Redis or the database is unavailable."),
        )
    }
    result.setdefault("paths", {})[SSE_ADDRESS] = {
        "get": {
            "operationId": "videos_stream",
            "summary": "The video's live events (Server-Sent Events)",
            "description": f"A stream of {events}: the payload of each is in the AsyncAPI document "
            f"({PATH}), the machine-readable contract of this stream and the WebSocket.",
            "tags": ["videos"],
            "externalDocs": {"description": "AsyncAPI 3 document", "url": PATH},
            # Anyone may watch; a token or the session shows held comments to moderators.
            "security": [{"tokenAuth": []}, {"bearerAuth": []}, {"cookieAuth": []}, {}],
            "parameters": [
                parameter,
                {
                    "in": "header",
                    "name": "Last-Event-ID",
                    "schema": {"type": "string", "pattern": POSITION["pattern"]},
                    "description": "Resume after this position.",
                },
                {
                    "in": "query",
                    "name": "last_event_id",
                    "schema": {"type": "string", "pattern": POSITION["pattern"]},
                    "description": "Resume after this position (as Last-Event-ID).",
                },
                {"in": "query", "name": "token", "schema": {"type": "string"}, "description": "An API token."},
            ],
            "responses": {
                "200": {
                    "description": f"The event stream; see {PATH}.",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **errors,
            },
        }
    }
    return result
