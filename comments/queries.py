"""The read side of comments: pages of history and catch-up.

Served from the video's Redis stream while it holds the range asked for, from
the database beyond it; both give identical results (tests/test_pagination.py
trims the stream to prove it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from comments import cursors, events, hotstore
from comments.models import Comment
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS


@dataclass
class Page:
    results: list[dict]  # oldest first
    has_more: bool
    source: str  # "stream" or "database": for tests and metrics

    @property
    def first_cursor(self) -> str | None:
        return self.results[0]["cursor"] if self.results else None

    @property
    def last_cursor(self) -> str | None:
        return self.results[-1]["cursor"] if self.results else None


def _from_db(comment: Comment) -> dict:
    data = dict(events.comment_data(comment))
    data["cursor"] = comment.cursor
    return data


def _from_stream(event: hotstore.StreamEvent) -> dict:
    return json.loads(event.data)


def _db_visible(video_id: int):
    return Comment.objects.visible().filter(video_id=video_id).select_related("author")


def page_after(video_id: int, after: str, limit: int, prefer_stream: bool = True) -> Page:
    """Visible comments after `after`, oldest first (catch-up)."""
    if prefer_stream:
        try:
            found, complete = hotstore.comments_after(video_id, after, limit + 1)
        except UNAVAILABLE_ERRORS:
            complete = False
        if complete:
            return Page([_from_stream(e) for e in found[:limit]], len(found) > limit, "stream")
    rows = list(_db_visible(video_id).filter(position__gt=cursors.to_position(after)).order_by("position")[: limit + 1])
    return Page([_from_db(c) for c in rows[:limit]], len(rows) > limit, "database")


def page_before(video_id: int, before: str | None, limit: int, prefer_stream: bool = True) -> Page:
    """Visible comments before `before` (None = the newest), oldest first (history)."""
    if prefer_stream:
        try:
            found, complete = hotstore.comments_before(video_id, before or "+", limit + 1)
        except UNAVAILABLE_ERRORS:
            complete = False
        if complete:
            # found is oldest first; the extra one (if any) is the oldest.
            return Page([_from_stream(e) for e in found[-limit:]], len(found) > limit, "stream")
    qs = _db_visible(video_id)
    if before is not None:
        qs = qs.filter(position__lt=cursors.to_position(before))
    rows = list(qs.order_by("-position")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    return Page([_from_db(c) for c in rows], has_more, "database")


def page_between(video_id: int, after: str, before: str, limit: int) -> Page:
    rows = list(
        _db_visible(video_id)
        .filter(position__gt=cursors.to_position(after), position__lt=cursors.to_position(before))
        .order_by("position")[: limit + 1]
    )
    return Page([_from_db(c) for c in rows[:limit]], len(rows) > limit, "database")


def replay_page(video_id: int, from_ms: int, to_ms: int, limit: int, after: str | None = None) -> Page:
    """Chat replay: visible comments with from_ms <= offset_ms < to_ms, in
    offset order, ties by position; `after` (the cursor of the last comment a
    previous page gave, whose offset is from_ms) continues among the ties at
    from_ms. From the database (the stream is in post order, and trimmed):
    one range of the (video, offset_ms, position) index."""
    rows = _db_visible(video_id).filter(offset_ms__gte=from_ms, offset_ms__lt=to_ms)
    if after is not None:
        rows = rows.exclude(offset_ms=from_ms, position__lte=cursors.to_position(after))
    found = list(rows.order_by("offset_ms", "position")[: limit + 1])
    return Page([_from_db(c) for c in found[:limit]], len(found) > limit, "database")
