"""What a connection is sent before it goes live: its backlog.

Read *after* the connection is registered with the hub (invariant 4), one
page at a time (dispatcher/streams.py `catch_up` pages on until it reaches
what the hub has delivered, then goes live dropping live events at or before
the last page's `last_id`).

* New viewer (no Last-Event-ID): the last REALTIME_BACKLOG visible comments.
* Resume (Last-Event-ID / last_event_id / after=): exactly the events after
  that position, REALTIME_CATCHUP_PAGE at a time (`resume_page`) -- from the
  stream while it holds them, from the database for the part it no longer
  holds (trimmed, or lost in a Redis restart; `database_page`).
  Removed and held comments are never in a backlog (invariant 2).

Plain synchronous code (Redis + ORM); consumers run it in a worker thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from comments import cursors, events, hotstore
from comments.hotstore import StreamEvent
from comments.models import Comment, Pin
from livecomment.lib import redis_client


@dataclass
class Backlog:
    """One page of what a connection is sent before it goes live."""

    events: list[StreamEvent]
    last_id: str  # how far the page reaches; live events up to here are dropped
    more: bool = False  # a full page: the next one follows at once
    # The video's current pin, sent before the first page's events (`current_pin`).
    pin: StreamEvent | None = None

    @property
    def last_position(self) -> int:
        return cursors.to_position(self.last_id)


def current_pin(video_id: int) -> StreamEvent | None:
    """The video's pin now, as a `pin` event with no id: a stream open sends it
    first, before the backlog, whether the viewer joins or resumes. Without an
    id it does not move the client's resume point (SSE keeps its last event
    ID); its data's `cursor` is where it was pinned, so a client that also
    finds that `pin` in the backlog or live knows it for the same pin. A pin
    whose `expires` has passed is none (expiry is lazy: comments/services/pins.py)."""
    from django.utils import timezone

    row = Pin.objects.filter(video_id=video_id).values_list("data", "expires_at").first()
    if row is None or (row[1] is not None and row[1] <= timezone.now()):
        return None
    return StreamEvent("", "pin", row[0])


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


def database_page(
    video_id: int, after: str, before: str | None, limit: int, moderator: bool, since: str | None = None
) -> Backlog:
    """At most `limit` events the database holds strictly between `after` and
    `before` (None: no upper bound), in stream order, read by keyset on
    `position` and `status_position`.

    `since` is where the reader's view of the video starts (its resume point;
    default `after`): comments at or before it get the latest status change
    made after `after` (removed, or restored: `_status_event`); later ones are
    sent as they are now (a removed one not at all). `more` is True when rows
    may remain; then `last_id` is the position the next page starts after.
    """
    low = cursors.to_position(after)
    origin = low if since is None else cursors.to_position(since)
    comments = Comment.objects.in_stream().filter(video_id=video_id, position__gt=low)
    changes = Comment.objects.in_stream().filter(video_id=video_id, status_position__gt=low, position__lte=origin)
    if before is not None:
        high = cursors.to_position(before)
        comments = comments.filter(position__lt=high)
        changes = changes.filter(status_position__lt=high)
    new_rows = list(comments.select_related("author").order_by("position")[:limit])
    changed_rows = list(changes.select_related("author").order_by("status_position")[:limit])
    keyed = [(cast(int, c.position), False, c) for c in new_rows]
    keyed += [(cast(int, c.status_position), True, c) for c in changed_rows]
    keyed.sort(key=lambda k: k[0])
    # Either list full, or the two together past the page: rows may remain.
    more = len(new_rows) == limit or len(changed_rows) == limit or len(keyed) > limit
    del keyed[limit:]
    found: list[StreamEvent] = []
    for _, changed, comment in keyed:
        event = _status_event(comment, moderator) if changed else _comment_event(comment, moderator)
        if event is not None:
            found.append(event)
    last_id = cursors.from_position(keyed[-1][0]) if keyed else after
    return Backlog(found, last_id, more)


def resume_page(
    video_id: int, after: str, limit: int, moderator: bool = False, use_database: bool = True, since: str | None = None
) -> Backlog:
    """The next page of a resume: at most about `limit` events after `after`,
    in stream order -- from the stream while it holds them, from the database
    for the part it no longer holds (trimmed, or lost in a Redis restart).

    `last_id` is how far the page reaches (the next page starts after it);
    `more` says the page was full, so another one follows at once. `since` is
    the client's original resume point (see `database_page`).
    """
    client = redis_client.for_video(video_id)
    key = hotstore.stream_key(video_id)
    entries = cast("list[hotstore.Entry]", client.xrange(key, f"({after}", "+", count=limit))
    # Read after the page: the stream held everything after `after` when the
    # page was read only if it still starts at or before `after` (trimming
    # only ever moves its start forward).
    first = cast("list[hotstore.Entry]", client.xrange(key, "-", "+", count=1))
    first_id = first[0][0] if first else None
    from_db: list[StreamEvent] = []
    last_id = after
    more = len(entries) == limit
    if first_id is None or cursors.compare(first_id, after) > 0:
        if not use_database:
            from livecomment.lib.errors import Unavailable

            raise Unavailable("database")  # the stream alone cannot say what was missed
        older = database_page(video_id, after, first_id, limit, moderator, since if since is not None else after)
        if older.more:
            return older
        from_db, last_id = older.events, older.last_id
        if first_id is not None:  # the database covered everything below the stream's start
            last_id = max(last_id, cursors.from_position(cursors.to_position(first_id) - 1), key=cursors.to_position)
        # What the stream held below its start now is in the database page.
        entries = [e for e in entries if first_id is not None and cursors.compare(e[0], first_id) >= 0]
    stream_events = [hotstore.parse_entry(i, f) for i, f in entries]
    if stream_events:
        last_id = stream_events[-1].id
    elif not from_db:
        tip = cast("list[hotstore.Entry]", client.xrevrange(key, "+", "-", count=1))
        if tip and cursors.compare(last_id, tip[0][0]) > 0:
            last_id = tip[0][0]  # a resume point from the future: do not mute what comes next
    visible = hotstore.filter_for_viewer(video_id, stream_events, moderator)
    return Backlog(from_db + visible, last_id, more)


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
