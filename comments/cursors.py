"""Stream positions ("cursors") and their sortable integer form.

A cursor is the Redis stream ID of an event, "<milliseconds>-<sequence>". The
database keeps each comment's cursor as text (what clients see) and as one
integer that sorts like the stream (what queries use):
position = ms * 1_000_000 + seq, which fits a signed 64-bit column until 2262.
"""

from __future__ import annotations

import re

# ASCII digits only and the whole string (fullmatch: "$" would allow a trailing
# newline): anything else passing here reaches Redis as a stream ID and fails.
_CURSOR = re.compile(r"([0-9]{1,13})-([0-9]{1,6})")
SEQ_FACTOR = 1_000_000
ZERO = "0-0"


class InvalidCursor(ValueError):
    pass


def parse(cursor: str) -> tuple[int, int]:
    match = _CURSOR.fullmatch(cursor) if isinstance(cursor, str) else None
    if not match:
        raise InvalidCursor(f"not a stream position: {cursor!r}")
    return int(match.group(1)), int(match.group(2))


def to_position(cursor: str) -> int:
    ms, seq = parse(cursor)
    return ms * SEQ_FACTOR + seq


def from_position(position: int) -> str:
    return f"{position // SEQ_FACTOR}-{position % SEQ_FACTOR}"


def canonical(cursor: str) -> str:
    """The cursor as Redis writes it: "007-0" and "7-0" are one position, but
    only the second compares equal to stored IDs ("(00-0" is not "(0-0")."""
    ms, seq = parse(cursor)
    return f"{ms}-{seq}"


def is_valid(cursor: str) -> bool:
    return isinstance(cursor, str) and _CURSOR.fullmatch(cursor) is not None


def compare(a: str, b: str) -> int:
    pa, pb = to_position(a), to_position(b)
    return (pa > pb) - (pa < pb)
