"""Request body parsers of the REST API (settings.REST_FRAMEWORK)."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested too deeply for Python's decoder
    ("[[[[..." ) is a 400 like any other malformed JSON, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


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
    from livecomment.errors import ServiceError

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
