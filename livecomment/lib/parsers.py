"""JSON bodies and frames: one decoder with a nesting limit, and the REST API's parser.

Python's decoder recurses once per level: "[[[[..." a few thousand deep is a
RecursionError, and a value a few hundred deep can still overflow whatever
walks it later (a serializer, an error message). So every JSON a client sends
-- REST bodies, the console's, the WebSocket's frames, the posting fast path --
is decoded by `loads`, which refuses more than MAX_JSON_DEPTH levels.
"""

from __future__ import annotations

import json

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 32


class JSONTooDeep(ValueError):
    pass


def _strict(constant):
    raise ValueError(f"{constant} is not JSON")  # NaN, Infinity: as DRF's strict parser


def check_depth(value, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise JSONTooDeep when containers nest more than `limit` levels (iterative)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise JSONTooDeep(f"JSON nested more than {limit} levels deep.")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def loads(data: str | bytes):
    """`json.loads`, strict about NaN/Infinity, refusing JSON nested too deeply.
    Every failure is a ValueError (JSONTooDeep for the depth)."""
    try:
        value = json.loads(data, parse_constant=_strict)
    except RecursionError:
        raise JSONTooDeep(f"JSON nested more than {MAX_JSON_DEPTH} levels deep.") from None
    check_depth(value)
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with the nesting limit: too deep is a 400 like any
    other malformed JSON, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {MAX_JSON_DEPTH} levels deep.") from None
        try:
            check_depth(value)
        except JSONTooDeep as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        return value


# Names of unknown fields quoted back in the error: a few, each shortened.
_NAMES_SHOWN = 10
_NAME_MAX = 64


def _shown(name: str) -> str:
    """A field name as it can be quoted back: short, and UTF-8 even when the
    client sent a lone surrogate (which would break the JSON answer)."""
    short = name[:_NAME_MAX]
    try:
        short.encode("utf-8")
    except UnicodeEncodeError:
        short = short.encode("utf-8", "backslashreplace").decode("utf-8")
    return short if len(name) <= _NAME_MAX else short + "..."


def field_names(serializer_class) -> tuple[str, ...]:
    """The fields a request serializer declares: the body's only allowed keys
    (and what the schema says, with additionalProperties: false)."""
    return tuple(serializer_class().fields)


def strict_body(data, allowed, what: str = "The body") -> dict:
    """`data` when it is a JSON object of only `allowed` keys (a serializer
    class or names); else a 400. A field nobody reads is refused rather than
    ignored, so nothing a client adds can reach a function it was not meant for."""
    from livecomment.lib.errors import ServiceError

    names = field_names(allowed) if isinstance(allowed, type) else tuple(allowed)
    if not isinstance(data, dict):
        raise ServiceError("invalid_body", f"{what} must be a JSON object.")
    unknown = sorted(_shown(str(key)) for key in data if key not in names)
    if unknown:
        listed = ", ".join(unknown[:_NAMES_SHOWN]) + (", ..." if len(unknown) > _NAMES_SHOWN else "")
        raise ServiceError(
            "unknown_fields",
            f"Unknown fields: {listed}. Allowed: {', '.join(names) or 'none'}.",
            fields=unknown[:_NAMES_SHOWN],
        )
    return data
