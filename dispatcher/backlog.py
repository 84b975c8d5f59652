"""What a connection is sent before it goes live: its backlog.

Read *after* the connection is registered with the hub (invariant 4), so every
event is either in the backlog or arrives live; the connection drops live
events at or before `Backlog.last_id`.

* New viewer (no Last-Event-ID): the last REALTIME_BACKLOG visible comments.
* Resume (Last-Event-ID / last_event_id / after=): exactly the events after
  that position -- from the stream while it holds them, from the database
  for the part it no longer holds (trimmed, or lost in a Redis restart).
  Removed and held comments are never in a backlog (invariant 2).

Plain synchronous code (Redis + ORM); consumers run it in a worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from django.db.models import Q

from comments import cursors, events, hotstore
from comments.hotstore import StreamEvent
from comments.models import Comment
from livecomment import redis_client


@dataclass
class Backlog:
    events: list[StreamEvent]
    last_id: str  # what the connection has "seen"; live events up to here are dropped

    @property
    def last_position(self) -> int:
        return cursors.to_position(self.last_id)


def _comment_event(comment: Comment, moderator: bool) -> StreamEvent | None:
    data = dict(events.comment_data(comment), cursor=comment.cursor)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    cursor = cast(str, comment.cursor)  # set: the comment is in the stream (in_stream())
    if comment.status == Comment.Status.VISIBLE:
        return StreamEvent(cursor, "comment", text, comment.pk)
    if comment.status == Comment.Status.HELD and moderator:
        return StreamEvent(cursor, "comment.held", text, comment.pk, hotstore.MOD_AUDIENCE)
    return None


def _status_event(comment: Comment, moderator: bool) -> StreamEvent | None:
    """The latest status change of a comment older than the resume point."""
    position = cursors.from_position(cast(int, comment.status_position))  # set: matched on status_position
    if comment.status == Comment.Status.VISIBLE:
        data = dict(events.comment_data(comment), cursor=comment.cursor)
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return StreamEvent(position, "comment", text, comment.pk, reannounce=True)
    text = json.dumps({"cursor": comment.cursor, "id": comment.pk}, separators=(",", ":"))
    return StreamEvent(position, "comment.removed", text)


def _from_database(video_id: int, after: str, before: str | None, moderator: bool) -> list[StreamEvent]:
    low = cursors.to_position(after)
    in_range = Q(position__gt=low)
    status_in_range = Q(status_position__gt=low, position__lte=low)
    if before is not None:
        high = cursors.to_position(before)
        in_range &= Q(position__lt=high)
        status_in_range &= Q(status_position__lt=high)
    found: list[StreamEvent] = []
    rows = Comment.objects.in_stream().filter(video_id=video_id).filter(in_range | status_in_range)
    for comment in rows.select_related("author"):
        if comment.position > low:
            event = _comment_event(comment, moderator)
        else:
            event = _status_event(comment, moderator)
        if event is not None:
            found.append(event)
    found.sort(key=lambda e: cursors.to_position(e.id))
    return found


def resume(video_id: int, after: str, moderator: bool = False, use_database: bool = True) -> Backlog:
    """Exactly the events after `after`, in stream order."""
    client = redis_client.for_video(video_id)
    key = hotstore.stream_key(video_id)
    first = cast("list[hotstore.Entry]", client.xrange(key, "-", "+", count=1))
    first_id = first[0][0] if first else None
    from_db: list[StreamEvent] = []
    if first_id is None or cursors.compare(first_id, after) > 0:
        if not use_database:
            from livecomment.errors import Unavailable

            raise Unavailable("database")  # the stream alone cannot say what was missed
        from_db = _from_database(video_id, after, first_id, moderator)
    entries = cast("list[hotstore.Entry]", client.xrange(key, f"({after}", "+"))
    stream_events = [hotstore.parse_entry(i, f) for i, f in entries]
    last_id = stream_events[-1].id if stream_events else after
    if not stream_events and from_db:
        last_id = max(last_id, from_db[-1].id, key=cursors.to_position)
    tip = cast("list[hotstore.Entry]", client.xrevrange(key, "+", "-", count=1))
    if tip and cursors.compare(last_id, tip[0][0]) > 0 and not from_db:
        last_id = tip[0][0]  # a resume point from the future: do not mute what comes next
    visible = hotstore.filter_for_viewer(video_id, stream_events, moderator)
    seen = {e.id for e in visible}
    merged = [e for e in from_db if e.id not in seen] + visible
    merged.sort(key=lambda e: cursors.to_position(e.id))
    return Backlog(merged, last_id)


def latest(video_id: int, count: int, moderator: bool = False, use_database: bool = True) -> Backlog:
    """The newest `count` comments, for a viewer who has seen nothing yet."""
    client = redis_client.for_video(video_id)
    key = hotstore.stream_key(video_id)
    wanted = {"comment", "comment.held"} if moderator else {"comment"}
    found: list[StreamEvent] = []
    tip: str | None = None
    end = "+"
    batch = max(count * 2, 100)
    exhausted = False
    oldest_in_stream: str | None = None
    while len(found) < count:
        entries = cast("list[hotstore.Entry]", client.xrevrange(key, end, "-", count=batch))
        if not entries:
            exhausted = True
            break
        if tip is None:
            tip = entries[0][0]
        batch_events = [hotstore.parse_entry(i, f) for i, f in entries]
        oldest_in_stream = batch_events[-1].id
        end = f"({oldest_in_stream}"
        candidates = [e for e in batch_events if e.type in wanted and not e.reannounce]
        found.extend(hotstore.filter_for_viewer(video_id, candidates, moderator))
        if len(entries) < batch:
            exhausted = True
            break
    if count == 0:
        found = []
    found = found[:count]
    found.reverse()
    if exhausted and len(found) < count and use_database:
        # The stream's start is not necessarily the video's: older comments
        # live in the database.
        older = _older_from_database(video_id, oldest_in_stream, count - len(found), moderator)
        found = older + found
    return Backlog(found, tip or (found[-1].id if found else cursors.ZERO))


def _older_from_database(video_id: int, before: str | None, count: int, moderator: bool) -> list[StreamEvent]:
    statuses = [Comment.Status.VISIBLE] + ([Comment.Status.HELD] if moderator else [])
    rows = Comment.objects.in_stream().filter(video_id=video_id, status__in=statuses)
    if before is not None:
        rows = rows.filter(position__lt=cursors.to_position(before))
    picked = list(rows.select_related("author").order_by("-position")[:count])
    picked.reverse()
    return [e for e in (_comment_event(c, moderator) for c in picked) if e is not None]


def database_range(
    video_id: int, after: str, before: str | None, limit: int, moderator: bool, origin: str | None = None
) -> tuple[list[StreamEvent], str | None]:
    """One page of the database's events in (after, before), in stream order,
    as `_from_database` rebuilds them: at most `limit` rows are read. Returns
    (the page's events, where the next page starts; None after the last).

    `origin` is where the whole read started (default `after`): status changes
    count only for comments at or before it; a later comment's row already
    says its current state."""
    low = cursors.to_position(after)
    floor = cursors.to_position(origin) if origin is not None else low
    new = Q(position__gt=low)
    changed = Q(status_position__gt=low, position__lte=floor)
    if before is not None:
        high = cursors.to_position(before)
        new &= Q(position__lt=high)
        changed &= Q(status_position__lt=high)
    rows = Comment.objects.in_stream().filter(video_id=video_id).select_related("author")
    picked = [(c.position, c, False) for c in rows.filter(new).order_by("position")[:limit]]
    picked += [(c.status_position, c, True) for c in rows.filter(changed).order_by("status_position")[:limit]]
    picked.sort(key=lambda row: row[0])
    page = picked[:limit]
    found: list[StreamEvent] = []
    for _, comment, is_status in page:
        event = _status_event(comment, moderator) if is_status else _comment_event(comment, moderator)
        if event is not None:
            found.append(event)
    more = len(page) == limit
    return found, (cursors.from_position(page[-1][0]) if more else None)
