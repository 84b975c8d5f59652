"""The payloads of real-time events, as documented in docs/realtime.md.

Each event goes out as SSE (`id:`, `event:`, `data:`) or as a WebSocket frame
{"event", "id", "data"}. The "cursor" of a comment is its stream position; it
is added when the event is read from or appended to the stream, so the data
built here never carries it; `event()` adds it to what goes to viewers, and
`announce()` is the one way the write path hands events to the dispatcher.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from django.db import transaction

from dispatcher import Event, publish


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


def removed_data(comment) -> dict:
    return {"id": comment.pk}


def report_data(report) -> dict:
    comment, reporter = report.comment, report.reporter
    return {
        "id": report.pk,
        "comment": comment.pk,
        "comment_cursor": comment.cursor,
        "reporter": {"id": reporter.pk, "name": reporter.get_username()},
        "reason": report.reason,
    }


def video_state_data(video) -> dict:
    return {"state": video.state}


def video_settings_data(video) -> dict:
    return {"slow_mode_seconds": video.slow_mode_seconds, "comments_enabled": video.comments_enabled}


def comment_json(comment) -> dict:
    """A comment as the REST API and the console show it: its event data with cursor and status."""
    data = dict(comment_data(comment))
    data["cursor"] = comment.cursor
    data["status"] = comment.status
    return data


def event(kind: str, positions: tuple[str, str], data: dict, audience: str = "", of_comment=None) -> Event:
    """An event appended at `positions` (previous ID, its ID), as viewers get it:
    `data` with its cursor -- its own ID, or the comment's own cursor when it
    re-announces an older comment (`of_comment`: a removal, a restore) -- for
    `audience` ("" everyone, "mod" moderators)."""
    prev, new = positions
    cursor = new if of_comment is None else of_comment.cursor
    return {"type": kind, "id": new, "prev": prev, "data": dict(data, cursor=cursor), "audience": audience}


def announce(video_id: int, *events: Event) -> None:
    """Publish `events` (in stream order) once the database has what they
    announce: at the commit of the surrounding transaction, at once outside one."""
    if events:
        transaction.on_commit(lambda: publish(video_id, *events))
