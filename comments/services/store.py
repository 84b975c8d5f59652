"""The two-store write of new comments: the database and the video's stream.

A failure of either store leaves nothing half-written, and only once the
database has the rows are the events handed to `dispatcher.publish`.

Comments are written in batches (`post_comments`; `post_comment` is a batch
of one; the posting endpoint's group commit, comments/fastpost/batcher.py, sends
whatever arrived together). The order of the two writes (ARCHITECTURE.md,
"The path of one comment"):

* On PostgreSQL: take the rows' ids from the table's sequence; XADD the
  events to the stream (a Lua script that also returns the previous
  position, for gap detection); INSERT the whole rows, positions included, in
  one statement. If Redis fails nothing was written; if the INSERT fails the
  stream entries are deleted again (XDEL) before the error is answered.
* Elsewhere (SQLite, or inside a caller's transaction): INSERT the rows
  inside a transaction (invisible to everyone until it commits, and without
  a stream position); XADD; UPDATE the rows with their positions; COMMIT.
  Redis failing rolls back; the commit failing deletes the stream entries.

Then publish(): the events go to every gateway serving the video. Readers
only ever see rows that carry a position, and stream entries whose rows
exist -- except inside the window between XADD and the INSERT or COMMIT, one
statement long (ARCHITECTURE.md, "Known limits").
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from comments import events, hotstore
from comments.models import Comment
from dispatcher import Event
from livecomment.lib.errors import Unavailable
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS
from videos.models import Video

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Row:
    """A comment row to store: checked and reserved."""

    author: Any
    text: str
    idempotency_key: str
    held: bool = False
    origin_region: str = ""
    origin_id: int | None = None
    created: Any = None  # from another region: the time it was posted there
    offset_ms: int | None = None  # from another region: its offset there (never computed again here)
    roles: str = ""  # Comment.author_roles


_MILLISECOND = timedelta(milliseconds=1)


def offset_ms(created: datetime, started_at: datetime | None) -> int | None:
    """A comment's offset: milliseconds from the video's start to its creation
    (negative before it; None while the video has no started_at)."""
    return None if started_at is None else (created - started_at) // _MILLISECOND


def _store_and_append(video: Video, author, text: str, idempotency_key: str, held: bool = False, **origin) -> Comment:
    return _store_and_append_many(video, [_Row(author, text, idempotency_key, held, **origin)])[0]


def _store_and_append_many(video: Video, rows: list[_Row]) -> list[Comment]:
    now = timezone.now()
    comments = [
        Comment(
            video=video,
            author=row.author,
            text=row.text,
            idempotency_key=row.idempotency_key,
            status=Comment.Status.HELD if row.held else Comment.Status.VISIBLE,
            origin_region=row.origin_region,
            origin_id=row.origin_id,
            created=row.created if row.created is not None else now,
            offset_ms=row.offset_ms if row.origin_region else offset_ms(now, video.started_at),
            author_roles=row.roles,
        )
        for row in rows
    ]
    connection = connections[Comment.objects.db]
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        _append_then_insert(video, comments, connection)
    else:
        _insert_append_update(video, comments)
    return comments


def _insert_append_update(video: Video, comments: list[Comment]) -> None:
    """The rows first, then the stream, in one transaction: INSERT (for the
    ids), append, UPDATE the positions, COMMIT."""
    with _TakenBackOnFailure(video.pk) as appended, transaction.atomic():
        _insert(comments)
        new_events, positions = appended.add(*_append(video, comments))
        _set_cursors(comments)
        _fail_point("before_commit")
        published = _published(new_events, positions)
        events.announce(video.pk, *published)


def _append_then_insert(video: Video, comments: list[Comment], connection) -> None:
    """On PostgreSQL the ids come from the table's sequence first, so the rows
    can be written whole, after the stream: nextval, append, one INSERT (a
    statement of its own, atomic without BEGIN/COMMIT) -- two round trips to
    the database where the other order takes four. What readers can see is
    the same: the stream entries exist from the append until the INSERT
    answers (then their rows do too, or the entries are deleted again), as
    they do from the append until the COMMIT in the other order."""
    with _TakenBackOnFailure(video.pk) as appended:
        _take_ids(comments, connection)
        new_events, positions = appended.add(*_append(video, comments))
        _fail_point("before_commit")
        _insert(comments, numbered=True)
    events.announce(video.pk, *_published(new_events, positions))


class _TakenBackOnFailure:
    """The stream and region-stream entries a write appended, deleted again
    if the write fails after all; a database failure becomes a 503."""

    def __init__(self, video_id: int):
        self.video_id = video_id
        self.entries: list[str] = []
        self.region_entries: list[str] = []  # for the relay (local comments only)

    def add(self, new_events, positions, region_entries):
        self.entries = [new for _, new in positions]
        self.region_entries = region_entries
        return new_events, positions

    def __enter__(self) -> _TakenBackOnFailure:
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        if kind is None:
            return
        _undo_appends(self.video_id, self.entries, self.region_entries)
        if issubclass(kind, DatabaseError):
            log.warning("database write failed: %s", exc)
            raise Unavailable("database") from exc


def _append(video: Video, comments: list[Comment]):
    """Append the comments (their ids known) to the video's stream and, for
    the relay, local ones to the region stream; set each one's cursor.
    Returns (the events, (prev, id) of each, the region entries)."""
    # A held comment goes to moderators only, as `comment.held`; it is hidden
    # before it is appended so no reader of the stream ever takes it for visible.
    datas = [events.comment_data(comment) for comment in comments]
    new_events = [
        hotstore.NewEvent("comment.held", dict(data), comment.pk, hotstore.MOD_AUDIENCE)
        if comment.status == Comment.Status.HELD
        else hotstore.NewEvent("comment", dict(data), comment.pk)
        for comment, data in zip(comments, datas, strict=True)
    ]
    try:
        for comment in comments:
            if comment.status == Comment.Status.HELD:
                hotstore.set_hidden(comment.video_id, comment.pk, True)
        positions, region_entries = hotstore.append_with_region(
            video.pk,
            new_events,
            [
                ("comment", dict(data, status=comment.status), {"c": comment.pk})
                for comment, data in zip(comments, datas, strict=True)
                if not comment.origin_region
            ],
        )
    except UNAVAILABLE_ERRORS as exc:
        log.warning("redis unavailable on append: %s", exc)
        raise Unavailable("redis") from exc
    for comment, (_, new) in zip(comments, positions, strict=True):
        comment.set_cursor(new)
    return new_events, positions, region_entries


def _published(new_events: list[hotstore.NewEvent], positions: list[tuple[str, str]]) -> list[Event]:
    return [
        events.event(new_event.type, position, new_event.data, new_event.audience)
        for new_event, position in zip(new_events, positions, strict=True)
    ]


def _undo_appends(video_id: int, appended: list[str], region_entries: list[str]) -> None:
    if appended:
        _undo(hotstore.delete_entry, video_id, *appended)
    if region_entries:
        _undo(hotstore.delete_region_entry, video_id, *region_entries)


# The INSERT and UPDATE of every comment, as statements written once: with
# the ORM (`objects.create`, `filter().update()`) building them cost more CPU
# than the database spent running them (docs/BENCHMARKS.md, "The write path").
_INSERT_FIELDS = (
    "video",
    "author",
    "text",
    "created",
    "status",
    "idempotency_key",
    "origin_region",
    "origin_id",
    "offset_ms",
    "author_roles",
)
# With the id and the position known before the INSERT (_append_then_insert).
_NUMBERED_FIELDS = ("id", *_INSERT_FIELDS, "cursor", "position")


@functools.cache
def _write_statements(alias: str, rows: int, returning: bool = True, numbered: bool = False) -> tuple[str, str]:
    """The INSERT of `rows` rows (with RETURNING the ids where the database
    has it: not SQLite before 3.35; of rows with their ids and positions when
    `numbered`) and the UPDATE of one row's cursor."""
    connection = connections[alias]
    # Any: the meta API is typed for every kind of field (get_field() may give a
    # relation, `column` may be None); the fields named here are all concrete.
    meta: Any = Comment._meta
    quote = connection.ops.quote_name
    fields = _NUMBERED_FIELDS if numbered else _INSERT_FIELDS
    row = "({})".format(", ".join(["%s"] * len(fields)))
    insert = "INSERT INTO {} ({}) VALUES {}".format(
        quote(meta.db_table),
        ", ".join(quote(meta.get_field(name).column) for name in fields),
        ", ".join([row] * rows),
    )
    if returning and not numbered:
        insert += f" RETURNING {quote(meta.pk.column)}"
    update = "UPDATE {} SET {} = %s, {} = %s WHERE {} = %s".format(
        quote(meta.db_table),
        quote(meta.get_field("cursor").column),
        quote(meta.get_field("position").column),
        quote(meta.pk.column),
    )
    return insert, update


# Statements of more rows than this are split (SQLite's limit of 999
# parameters per statement before 3.32, and fewer distinct statements cached).
INSERT_ROWS_MAX = 100


def _take_ids(comments: list[Comment], connection) -> None:
    """Ids for new rows from the table's own sequence (PostgreSQL), one round trip."""
    meta: Any = Comment._meta
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(comments)],
        )
        for comment, (pk,) in zip(comments, cursor.fetchall(), strict=True):
            comment.pk = pk


def _insert(comments: list[Comment], numbered: bool = False) -> None:
    """INSERT the rows, as few statements as the database allows, and set
    each pk (`numbered`: rows whose ids and positions are set already)."""
    connection = connections[Comment.objects.db]
    fields = [Comment._meta.get_field(name) for name in (_NUMBERED_FIELDS if numbered else _INSERT_FIELDS)]
    many = numbered or connection.features.can_return_rows_from_bulk_insert
    step = INSERT_ROWS_MAX if many else 1
    with connection.cursor() as cursor:
        for start in range(0, len(comments), step):
            chunk = comments[start : start + step]
            values = [
                # get_field() is typed as maybe a relation; these are all concrete fields.
                field.get_db_prep_save(getattr(comment, field.attname), connection)  # type: ignore[union-attr]
                for comment in chunk
                for field in fields
            ]
            returning = many or connection.features.can_return_columns_from_insert
            cursor.execute(_write_statements(connection.alias, len(chunk), returning, numbered)[0], values)
            if numbered:
                continue
            if returning:
                # In the order of the VALUES, as Django's bulk_create relies on too.
                for comment, row in zip(chunk, cursor.fetchall(), strict=True):
                    comment.pk = row[0]
            else:
                pk_column: Any = Comment._meta.pk.column  # typed maybe None; a concrete field's is not
                chunk[0].pk = connection.ops.last_insert_id(cursor, Comment._meta.db_table, pk_column)
    for comment in comments:
        comment._state.adding = False
        comment._state.db = connection.alias


def _set_cursors(comments: list[Comment]) -> None:
    """UPDATE each row with its stream position: one round trip (psycopg runs
    executemany in pipeline mode)."""
    connection = connections[Comment.objects.db]
    update = _write_statements(connection.alias, 1)[1]
    with connection.cursor() as cursor:
        if len(comments) == 1:
            comment = comments[0]
            cursor.execute(update, [comment.cursor, comment.position, comment.pk])
        else:
            cursor.executemany(update, [[c.cursor, c.position, c.pk] for c in comments])


# Undo steps that could not run because Redis was away (a stream entry whose
# commit failed, reserved dedup/slow-mode keys of a failed write). Retried
# before this process's next write, so they do not outlive the outage.
_pending_undos: list[tuple] = []


def _undo(func, *args) -> None:
    try:
        func(*args)
    except UNAVAILABLE_ERRORS:
        log.warning("%s%r failed: Redis unavailable; will retry", func.__name__, args)
        _pending_undos.append((func, args))


def _retry_undos() -> None:
    while _pending_undos:
        func, args = _pending_undos[0]
        try:
            func(*args)
        except UNAVAILABLE_ERRORS:
            return
        _pending_undos.pop(0)


# Tests set this to a callable raising an exception at a named point of the
# write path, to prove what a failure there leaves behind.
FAIL_POINTS: dict[str, Callable[[], object]] = {}


def _fail_point(name: str) -> None:
    action = FAIL_POINTS.get(name)
    if action is not None:
        action()
