"""The payloads of real-time events, as documented in docs/realtime.md.

Each event goes out as SSE (`id:`, `event:`, `data:`) or as a WebSocket frame
{"event", "id", "data"}. The "cursor" of a comment is its stream position; it
is added when the event is read from or appended to the stream, so the data
built here never carries it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict


class Author(TypedDict):
    id: int
    name: str


class CommentData(TypedDict, total=False):
    id: int
    cursor: str
    video: int
    author: Author
    text: str
    created: str
    global_id: str  # "<origin region>:<id there>", the same in every region


class CommentRemovedData(TypedDict):
    id: int
    cursor: str


class ViewersData(TypedDict):
    count: int


class VideoStateData(TypedDict):
    state: str


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def comment_data(comment) -> CommentData:
    return {
        "id": comment.pk,
        "video": comment.video_id,
        "author": {"id": comment.author_id, "name": comment.author.get_username()},
        "text": comment.text,
        "created": timestamp(comment.created),
        "global_id": comment.global_id,
    }


def comment_json(comment) -> dict:
    """A comment as the REST API and the console show it: its event data with cursor and status."""
    data = dict(comment_data(comment))
    data["cursor"] = comment.cursor
    data["status"] = comment.status
    return data
