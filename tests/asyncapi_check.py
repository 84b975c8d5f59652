"""Check what a client received against the AsyncAPI document (livecomment/asyncapi.py).

`problems(transport, frame)` -> a list of what is wrong with one received SSE
event ({"event", "id", "data"} as tests/realtime_clients.py parses it) or
WebSocket frame: an event the document does not list, a missing or extra
`id`, a payload its schema refuses. Schemas are the document's own
(jsonschema, draft 7), $refs resolved inside the document.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

from jsonschema import Draft7Validator

from livecomment.asyncapi import build


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    return build()


def _resolve(ref: dict[str, str]) -> dict[str, Any]:
    node: Any = document()
    for part in ref["$ref"].removeprefix("#/").split("/"):
        node = node[part]
    return node


@cache
def _validator(pointer: str) -> Draft7Validator:
    return Draft7Validator({"$ref": pointer, "components": document()["components"]})


def _errors(schema: dict[str, Any], value: Any) -> list[str]:
    if "$ref" in schema:
        validator = _validator(schema["$ref"])
    else:
        validator = Draft7Validator({**schema, "components": document()["components"]})
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(value)]


@lru_cache(maxsize=2)
def messages_by_name(channel: str) -> dict[str, dict[str, Any]]:
    """The channel's messages by their `name` (the SSE `event:` / the frame's `event`)."""
    found = {}
    for ref in document()["channels"][channel]["messages"].values():
        message = _resolve(ref)
        found[message["name"]] = message
    return found


def problems(transport: str, frame: dict[str, Any]) -> list[str]:
    name = frame.get("event")
    channel = {"sse": "stream", "ws": "socket"}[transport]
    message = messages_by_name(channel).get(name)  # type: ignore[arg-type]
    if message is None:
        return [f"{transport} event {name!r} is not in the AsyncAPI document"]
    if transport == "ws":
        return [f"ws {name}: {error}" for error in _errors(message["payload"], frame)]
    found = [f"sse {name}: data {error}" for error in _errors(message["payload"], frame.get("data"))]
    headers = {key: frame[key] for key in ("id", "event") if key in frame}
    if "headers" in message:
        found += [f"sse {name}: {error}" for error in _errors(message["headers"], headers)]
    elif "id" in frame:
        found.append(f"sse {name}: has an id, but the document says it is not in the stream")
    return found
