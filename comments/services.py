"""The write path. Every change to a comment goes through a function here.

Views, consumers, admin actions and management commands call these; nothing
else saves a comment or broadcasts it. Each function validates, writes the
database (the system of record) and the video's Redis stream (the hot store)
so that a failure of either leaves nothing half-written, and only once the
database has the rows hands the events to `dispatcher.publish`.

Comments are written in batches (`post_comments`; `post_comment` is a batch
of one; the posting endpoint's group commit, comments/group_commit.py, sends
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
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Q
from django.db.models.signals import m2m_changed
from django.utils import timezone

from comments import cursors, events, hotstore
from comments.models import Ban, BlockedTerm, Comment, ModerationAction, Report
from dispatcher import publish
from dispatcher.publisher import Event
from livecomment.errors import ServiceError, Unavailable
from livecomment.redis_client import UNAVAILABLE_ERRORS
from videos.models import Video

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX = 255


@dataclass(frozen=True)
class PostResult:
    comment: Comment
    created: bool  # False: an earlier request with the same Idempotency-Key


def clean_text(text) -> str:
    """The text to store, or a ServiceError saying what is wrong with it."""
    if not isinstance(text, str):
        raise ServiceError("invalid_text", "text must be a string.")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ServiceError("empty_text", "The comment is empty.")
    limit = settings.COMMENT_MAX_LENGTH
    if len(text) > limit:
        raise ServiceError(
            "too_long", f"The comment is {len(text)} characters long; the limit is {limit}.", max_length=limit
        )
    for char in text:
        if char != "\n" and unicodedata.category(char) in ("Cc", "Cs"):
            raise ServiceError(
                "control_characters",
                f"The comment contains a control character (U+{ord(char):04X}); only newlines are allowed.",
            )
    return text


def clean_idempotency_key(key) -> str | None:
    if key in (None, ""):
        return None
    if not isinstance(key, str) or len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise ServiceError(
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters.",
        )
    return key


MODERATORS_CACHE_SECONDS = 5.0
_moderators_cache: dict[int, tuple[float, frozenset]] = {}


def video_moderator_ids(video: Video) -> frozenset:
    """Ids of the video's own moderators, cached a few seconds (asked on every post)."""
    now = time.monotonic()
    cached = _moderators_cache.get(video.pk)
    if cached is not None and now - cached[0] < MODERATORS_CACHE_SECONDS:
        return cached[1]
    ids = frozenset(video.moderators.values_list("pk", flat=True))
    _moderators_cache[video.pk] = (now, ids)
    return ids


def _forget_moderators(sender, instance, action, pk_set=None, reverse=False, **kwargs):
    """A change of a video's moderators applies at once in this process (other
    processes see it within MODERATORS_CACHE_SECONDS)."""
    if action.startswith("post_"):
        if reverse:  # user.moderated_videos changed: which videos is in pk_set
            _moderators_cache.clear()
        else:
            _moderators_cache.pop(instance.pk, None)


m2m_changed.connect(_forget_moderators, sender=Video.moderators.through, dispatch_uid="forget-moderators")


def can_moderate(user, video: Video) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff:
        return True
    return user.pk in video_moderator_ids(video)


def _check_video_open(video: Video) -> None:
    if video.state != Video.State.LIVE:
        raise ServiceError("video_not_live", f"This video is {video.state}; comments are closed.", 409)
    if not video.comments_enabled:
        raise ServiceError("comments_disabled", "Comments are turned off for this video.", 403)


def post_comment(video: Video, author, text, idempotency_key=None) -> PostResult:
    """Validate, deduplicate, store, append to the stream, then publish."""
    outcome = post_comments(video, [Draft(author, text, idempotency_key)])[0]
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome


@dataclass(slots=True)
class Draft:
    """One comment as a client sent it: nothing checked yet."""

    author: Any
    text: Any
    idempotency_key: Any = None


@dataclass(slots=True)
class _Accepted:
    """A draft that passed the checks, on its way to the stores."""

    index: int  # in the drafts
    author: Any
    text: str
    key: str | None
    held: bool
    slow: int
    reservation: hotstore.Reservation | None = None


Outcome = PostResult | ServiceError


def post_comments(video: Video, drafts: list[Draft], bans: dict[int, Ban] | None = None) -> list[Outcome]:
    """post_comment() for several comments to one video at once (a group
    commit): each draft is checked on its own and gets its own outcome, in
    order, while the stores see one batch -- one ban query, one Redis script
    for the dedup keys, one transaction with one INSERT, one script appending
    every event, one round trip of PUBLISHes. A failure of the database or
    Redis fails the whole batch (503 each) and leaves nothing, as for one.
    `bans`: the authors' active bans (user id -> ban), when the caller has
    looked them up already.
    """
    outcomes: list[Outcome | None] = [None] * len(drafts)
    checked: list[tuple[int, Any, str, str | None]] = []
    for index, draft in enumerate(drafts):
        try:
            text = clean_text(draft.text)
            key = clean_idempotency_key(draft.idempotency_key)
            if not draft.author.is_authenticated:
                raise ServiceError("not_authenticated", "Sign in to post comments.", 401)
            _check_video_open(video)
        except ServiceError as exc:
            outcomes[index] = exc
            continue
        checked.append((index, draft.author, text, key))

    if bans is None:
        bans = active_bans(video, [author for _, author, _, _ in checked]) if checked else {}
    accepted: list[_Accepted] = []
    for index, author, text, key in checked:
        moderator = can_moderate(author, video)
        try:
            _raise_if_banned(bans.get(author.pk))
            held = False if moderator else _screen_terms(video, text)
        except ServiceError as exc:
            outcomes[index] = exc
            continue
        accepted.append(_Accepted(index, author, text, key, held, 0 if moderator else video.slow_mode_seconds))

    if accepted:
        _retry_undos()
        try:
            reservations = hotstore.reserve_many(
                video.pk, [hotstore.Claim(a.author.pk, a.text, a.key, a.slow) for a in accepted]
            )
        except UNAVAILABLE_ERRORS as exc:
            log.warning("redis unavailable on reserve: %s", exc)
            reservations = None
        if reservations is None:
            for item in accepted:
                outcomes[item.index] = Unavailable("redis")
            accepted = []
        else:
            for item, reservation in zip(accepted, reservations, strict=True):
                item.reservation = reservation

    to_write: list[_Accepted] = []
    in_flight: list[_Accepted] = []  # an Idempotency-Key another draft of this batch is writing
    for item in accepted:
        try:
            if _writes_same_key(item, to_write):
                in_flight.append(item)
            elif (outcome := _reserved(video, item)) is None:
                to_write.append(item)
            else:
                outcomes[item.index] = outcome
        except ServiceError as exc:
            outcomes[item.index] = exc

    if to_write:
        written = _write_accepted(video, to_write)
        for item, result in zip(to_write, written, strict=True):
            outcomes[item.index] = result
        for item in in_flight:
            first = next(w for w in to_write if w.author.pk == item.author.pk and w.key == item.key)
            written_first = outcomes[first.index]
            outcomes[item.index] = (
                PostResult(written_first.comment, False) if isinstance(written_first, PostResult) else written_first
            )
    done = [outcome for outcome in outcomes if outcome is not None]
    assert len(done) == len(drafts), "a draft without an outcome"
    return done


def _writes_same_key(item: _Accepted, to_write: list[_Accepted]) -> bool:
    return bool(item.key) and any(w.author.pk == item.author.pk and w.key == item.key for w in to_write)


def _reserved(video: Video, item: _Accepted) -> Outcome | None:
    """What the reservation says of a draft: None when it is to be written."""
    reservation = item.reservation
    assert reservation is not None
    if reservation.outcome == "idem" and reservation.comment_id is None and item.key:
        reservation = item.reservation = _retake_abandoned_key(
            video, item.author, item.text, item.key, item.slow, reservation
        )
    if reservation.outcome == "idem":
        return PostResult(_original_for_key(video, item.author, item.key, reservation.comment_id), False)
    if reservation.outcome == "dup":
        raise ServiceError(
            "duplicate",
            f"You posted the same comment less than {settings.DUPLICATE_TEXT_WINDOW_SECONDS} s ago.",
            409,
        )
    if reservation.outcome == "slow":
        seconds = max(1, -(-reservation.retry_after_ms // 1000))
        raise ServiceError(
            "slow_mode",
            f"Slow mode is on: you can post again in {seconds} s.",
            429,
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )
    return None


def _write_accepted(video: Video, items: list[_Accepted]) -> list[Outcome]:
    keys = [key for item in items for key in (item.reservation.keys if item.reservation else ())]
    try:
        comments = _store_and_append_many(
            video, [_Row(item.author, item.text, item.key or "", held=item.held) for item in items]
        )
    except BaseException as exc:
        _undo(hotstore.release, video.pk, keys)
        if isinstance(exc, Unavailable):
            return [exc for _ in items]
        raise
    remembered = [(item.author.pk, item.key, c.pk) for item, c in zip(items, comments, strict=True) if item.key]
    try:
        hotstore.remember_idempotent(video.pk, remembered)
    except UNAVAILABLE_ERRORS:
        pass  # the database lookup in _original_for_key still finds them
    return [PostResult(comment, True) for comment in comments]


# No write takes this long (Redis answers within its socket timeout, the
# database within its lock timeout): an Idempotency-Key still marked in flight
# after this belongs to a request that died before it could release it.
IN_FLIGHT_MAX_SECONDS = 60


def _retake_abandoned_key(video: Video, author, text: str, key: str, slow: int, reservation):
    """The key is marked in flight. When no comment has it and the marker is
    older than any write takes, its request died (Redis went away mid-write,
    so its reservation could not be released): the retry takes the key over
    instead of being told "in progress" until the key expires."""
    if _find_by_key(video, author, key) is not None:
        return reservation
    try:
        if hotstore.drop_abandoned_idempotency_key(video.pk, author.pk, key, IN_FLIGHT_MAX_SECONDS):
            return hotstore.reserve(video.pk, author.pk, text, key, slow)
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable("redis") from exc
    return reservation


def _find_by_key(video: Video, author, key: str | None) -> Comment | None:
    window = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    return (
        Comment.objects.in_stream()
        .select_related("author")
        .filter(video=video, author=author, idempotency_key=key, created__gte=window)
        .order_by("-position")
        .first()
    )


def _original_for_key(video: Video, author, key: str | None, comment_id: int | None) -> Comment:
    if comment_id is not None:
        found = Comment.objects.in_stream().select_related("author").filter(pk=comment_id).first()
        if found is not None:
            return found
    found = _find_by_key(video, author, key)
    if found is None:
        # The first request with this key is still being written.
        raise ServiceError(
            "request_in_progress",
            "A request with this Idempotency-Key is still in progress.",
            409,
            headers={"Retry-After": "1"},
        )
    return found


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
        transaction.on_commit(lambda: publish(video.pk, *published))


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
    publish(video.pk, *_published(new_events, positions))


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
        {
            "type": event.type,
            "id": new,
            "prev": prev,
            "data": dict(event.data, cursor=new),
            "audience": event.audience,
        }
        for event, (prev, new) in zip(new_events, positions, strict=True)
    ]


def _undo_appends(video_id: int, appended: list[str], region_entries: list[str]) -> None:
    if appended:
        _undo(hotstore.delete_entry, video_id, *appended)
    if region_entries:
        _undo(hotstore.delete_region_entry, video_id, *region_entries)


# The INSERT and UPDATE of every comment, as statements written once: with
# the ORM (`objects.create`, `filter().update()`) building them cost more CPU
# than the database spent running them (docs/BENCHMARKS.md, "The write path").
_INSERT_FIELDS = ("video", "author", "text", "created", "status", "idempotency_key", "origin_region", "origin_id")
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


# -- other regions: what this region accepted goes on the region stream ----------


def _from_region(origin: str) -> dict:
    """Audit details of a change made in another region."""
    return {"origin": origin} if origin else {}


def _identity(user) -> dict:
    """Who `user` is in every region (regions/identity.py): never just a name."""
    from regions.identity import identity_of

    return identity_of(user)


def _to_regions(kind: str, video: Video | None, data: dict, audit) -> None:
    """Note a moderation change for the relay (inside its transaction; the
    audit row proves to the relay that the transaction committed)."""
    try:
        hotstore.append_region(kind, video.pk if video is not None else None, data, m=audit.pk)
    except UNAVAILABLE_ERRORS as exc:
        log.warning("redis unavailable on region append: %s", exc)
        raise Unavailable("redis") from exc


# -- status changes: remove, restore, approve ------------------------------------


# A moderator's or reporter's reason: the API refuses longer ones (400), the
# services cut what other callers give, and ingest cuts what another region sends.
REASON_MAX = 500


def _reason(value) -> str:
    return value[:REASON_MAX] if isinstance(value, str) else ""


def _audit(actor, action: str, video=None, comment=None, target_user=None, reason: str = "", **details):
    return ModerationAction.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        video=video,
        comment=comment,
        target_user=target_user,
        reason=_reason(reason),
        details=details,
    )


def _change_status(comment: Comment, new_status: str, by, action: str, reason: str = "", origin: str = "") -> Comment:
    """Move a comment to `new_status`, in both stores, audited, then publish.

    Removal appends `comment.removed`; making a comment visible (restore,
    approve) appends a new `comment` event that carries the comment's
    original cursor, so clients place it where it was first posted.
    """
    video_id = comment.video_id
    region_entry = None
    try:
        with transaction.atomic():
            locked = Comment.objects.select_for_update().select_related("author").get(pk=comment.pk)
            old_status = locked.status
            if old_status == new_status:
                return locked
            visible = new_status == Comment.Status.VISIBLE
            try:
                hotstore.set_hidden(video_id, locked.pk, not visible)
                if visible:
                    data = dict(events.comment_data(locked))
                    event_type, audience = "comment", ""
                    prev, appended = hotstore.append(
                        video_id, event_type, data, comment_id=locked.pk, original_cursor=locked.cursor or ""
                    )
                else:
                    data = {"id": locked.pk}
                    event_type = "comment.removed"
                    # Viewers never saw a held comment: only moderators hear of it going.
                    audience = hotstore.MOD_AUDIENCE if old_status == Comment.Status.HELD else ""
                    prev, appended = hotstore.append(
                        video_id, event_type, data, audience=audience, original_cursor=locked.cursor or ""
                    )
                if not origin:
                    region_entry = hotstore.append_region(
                        "status",
                        video_id,
                        {
                            "comment": locked.global_id,
                            "status": new_status,
                            "action": action,
                            "reason": _reason(reason),
                        },
                        c=locked.pk,
                        p=cursors.to_position(appended),
                    )
            except UNAVAILABLE_ERRORS as exc:
                raise Unavailable("redis") from exc
            locked.status = new_status
            locked.status_position = cursors.to_position(appended)
            locked.save(update_fields=["status", "status_position"])
            _audit(
                by,
                action,
                video=locked.video,
                comment=locked,
                target_user=locked.author,
                reason=reason,
                previous_status=old_status,
                **_from_region(origin),
            )
            payload = dict(data, cursor=locked.cursor)
            transaction.on_commit(
                lambda: publish(
                    video_id,
                    {"type": event_type, "id": appended, "prev": prev, "data": payload, "audience": audience},
                )
            )
    except DatabaseError as exc:
        # The database keeps the old status; put the hidden flag back in step.
        _undo(hotstore.set_hidden, video_id, comment.pk, comment.status != Comment.Status.VISIBLE)
        if region_entry is not None:
            _undo(hotstore.delete_region_entry, video_id, region_entry)
        raise Unavailable("database") from exc
    comment.refresh_from_db()
    return comment


def remove_comment(comment: Comment, by, reason: str = "", action: str = "remove") -> Comment:
    """Hide a comment from everyone (its author deleting it, or a moderator)."""
    return _change_status(comment, Comment.Status.REMOVED, by, action, reason)


def delete_own_comment(comment: Comment, user) -> Comment:
    if not user.is_authenticated:
        raise ServiceError("not_authenticated", "Sign in to delete comments.", 401)
    if comment.author_id == user.pk:
        return remove_comment(comment, by=user, action="delete_own")
    if can_moderate(user, comment.video):
        return remove_comment(comment, by=user)
    raise ServiceError("permission_denied", "You can only delete your own comments.", 403)


MODERATE_ACTIONS = ("remove", "restore", "approve")


def moderate_comment(comment: Comment, by, action: str, reason: str = "") -> Comment:
    """A moderator's remove / restore (a removed comment) / approve (a held one)."""
    _require_moderator(by, comment.video)
    if action == "remove":
        return remove_comment(comment, by, reason)
    if action == "restore":
        if comment.status != Comment.Status.REMOVED:
            raise ServiceError(
                "invalid_state", f"Only removed comments can be restored; this one is {comment.status}.", 409
            )
        return _change_status(comment, Comment.Status.VISIBLE, by, "restore", reason)
    if action == "approve":
        if comment.status != Comment.Status.HELD:
            raise ServiceError(
                "invalid_state", f"Only held comments can be approved; this one is {comment.status}.", 409
            )
        return _change_status(comment, Comment.Status.VISIBLE, by, "approve", reason)
    raise ServiceError("invalid_action", f"action must be one of {', '.join(MODERATE_ACTIONS)}.")


# -- who may do what ---------------------------------------------------------------


def _require_moderator(user, video: Video | None) -> None:
    if not getattr(user, "is_authenticated", False):
        raise ServiceError("not_authenticated", "Sign in first.", 401)
    if video is None:
        if not user.is_staff:
            raise ServiceError("permission_denied", "Only staff may act site-wide.", 403)
        return
    if not can_moderate(user, video):
        raise ServiceError("permission_denied", "You are not a moderator of this video.", 403)


# -- bans and time-outs --------------------------------------------------------------


# Asked on every post. As SQL: building this query with the ORM (Q objects,
# an ordering with NULLS FIRST) was a fifth of a POST's CPU in the write
# benchmark; the statement below is what the ORM produced, written once,
# for any number of users (a batch of posts asks once).
def active_ban_condition(table: str = "") -> str:
    """SQL: a row of the ban table (`table`: its alias) keeps its user from
    posting in the video. Parameters: the video's id, now."""
    t = f"{table}." if table else ""
    return (
        f"{t}lifted_at IS NULL AND ({t}video_id = %s OR {t}video_id IS NULL)"
        f" AND ({t}expires_at IS NULL OR {t}expires_at > %s)"
    )


def _active_bans_sql(users: int) -> str:
    return (
        f"SELECT * FROM {Ban._meta.db_table} WHERE user_id IN ({', '.join(['%s'] * users)})"
        f" AND {active_ban_condition()} ORDER BY expires_at IS NULL DESC, expires_at DESC"
    )


def active_ban(video: Video, user) -> Ban | None:
    """The ban that keeps `user` from posting in `video` (the longest one
    when there are several), or None."""
    return active_bans(video, [user]).get(user.pk)


def active_bans(video: Video, users: list) -> dict[int, Ban]:
    """active_ban() of several users in one query: user id -> ban, for those banned."""
    ids = sorted({user.pk for user in users if user.pk is not None})
    if not ids:
        return {}
    now = connections[Ban.objects.db].ops.adapt_datetimefield_value(timezone.now())
    found: dict[int, Ban] = {}
    for ban in Ban.objects.raw(_active_bans_sql(len(ids)), [*ids, video.pk, now]):
        found.setdefault(ban.user_id, ban)  # the longest first
    return found


def _raise_if_banned(ban: Ban | None) -> None:
    if ban is None:
        return
    if ban.expires_at is None:
        raise ServiceError("banned", "You are banned from commenting here.", 403, ends_at=None)
    seconds = max(1, int((ban.expires_at - timezone.now()).total_seconds()))
    raise ServiceError(
        "banned",
        f"You are timed out from commenting here for {seconds} more seconds.",
        403,
        ends_at=events.timestamp(ban.expires_at),
        retry_after=seconds,
    )


REMOVE_RECENT_SECONDS = 3600


def ban_user(
    video: Video | None, user, by, duration_seconds: int | None = None, reason: str = "", remove_recent: bool = False
) -> Ban:
    """Ban `user` from `video` (None: site-wide, staff only) for a while or for good.

    With remove_recent, their visible comments of the last hour in that video
    are removed too, each one live for every viewer.
    """
    _require_moderator(by, video)
    if duration_seconds is not None and (not isinstance(duration_seconds, int) or duration_seconds < 1):
        raise ServiceError(
            "invalid_duration", "duration_seconds must be a positive whole number, or null for a permanent ban."
        )
    if user.pk == getattr(by, "pk", None):
        raise ServiceError("invalid_target", "You cannot ban yourself.")
    if user.is_staff and not by.is_staff:
        raise ServiceError("permission_denied", "Only staff may ban staff.", 403)
    expires_at = timezone.now() + timedelta(seconds=duration_seconds) if duration_seconds else None
    with transaction.atomic():
        ban = Ban.objects.create(user=user, video=video, expires_at=expires_at, reason=_reason(reason), created_by=by)
        audit = _audit(
            by,
            "timeout" if duration_seconds else "ban",
            video=video,
            target_user=user,
            reason=reason,
            duration_seconds=duration_seconds,
            ban_id=ban.pk,
        )
        _to_regions(
            "ban",
            video,
            {
                "user": _identity(user),
                "reason": ban.reason,
                "expires_at": events.timestamp(expires_at) if expires_at else None,
            },
            audit,
        )
    if remove_recent and video is not None:
        since = timezone.now() - timedelta(seconds=REMOVE_RECENT_SECONDS)
        for comment in Comment.objects.in_stream().filter(
            video=video, author=user, status=Comment.Status.VISIBLE, created__gte=since
        ):
            remove_comment(comment, by, reason=f"ban: {reason}" if reason else "ban")
    return ban


def lift_ban(video: Video | None, user, by, reason: str = "") -> int:
    """End every active ban of `user` in `video` (or the site-wide ones)."""
    _require_moderator(by, video)
    now = timezone.now()
    with transaction.atomic():
        lifted = (
            Ban.objects.filter(user=user, video=video, lifted_at__isnull=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .update(lifted_at=now)
        )
        if lifted:
            audit = _audit(by, "unban", video=video, target_user=user, reason=reason, bans=lifted)
            _to_regions("unban", video, {"user": _identity(user), "reason": _reason(reason)}, audit)
    return lifted


# -- blocked terms ---------------------------------------------------------------------

TERMS_CACHE_SECONDS = 5.0
_terms_cache: dict[int, tuple[float, list[tuple[re.Pattern[str], str]]]] = {}


def _terms_for(video: Video) -> list[tuple[re.Pattern[str], str]]:
    """(compiled pattern, action) for the video and site-wide terms, cached a few seconds."""
    now = time.monotonic()
    cached = _terms_cache.get(video.pk)
    if cached is not None and now - cached[0] < TERMS_CACHE_SECONDS:
        return cached[1]
    compiled = []
    for term in BlockedTerm.objects.filter(Q(video=video) | Q(video__isnull=True)):
        try:
            pattern = term.term if term.regex else re.escape(term.term)
            compiled.append((re.compile(pattern, re.IGNORECASE), term.action))
        except re.error:
            log.warning("blocked term %r is not a valid regular expression; skipped", term.term)
    _terms_cache[video.pk] = (now, compiled)
    return compiled


def _screen_terms(video: Video, text: str) -> bool:
    """Raise for a reject term; True when a hold term matches."""
    held = False
    for pattern, action in _terms_for(video):
        if pattern.search(text):
            if action == BlockedTerm.Action.REJECT:
                raise ServiceError("blocked_term", "Your comment contains a blocked term.")
            held = True
    return held


def save_blocked_term(term: BlockedTerm, by) -> BlockedTerm:
    _require_moderator(by, term.video)
    if term.regex:
        try:
            re.compile(term.term)
        except re.error as exc:
            raise ServiceError("invalid_pattern", f"Not a valid regular expression: {exc}") from None
    created = term.pk is None
    with transaction.atomic():
        term.created_by = term.created_by or by
        term.save()
        _audit(by, "term_add" if created else "term_change", video=term.video, term=term.term, term_action=term.action)
    _terms_cache.clear()
    return term


def delete_blocked_term(term: BlockedTerm, by) -> None:
    _require_moderator(by, term.video)
    with transaction.atomic():
        _audit(by, "term_delete", video=term.video, term=term.term)
        term.delete()
    _terms_cache.clear()


# -- reports -----------------------------------------------------------------------------


def report_comment(comment: Comment, reporter, reason: str = "") -> Report:
    if not getattr(reporter, "is_authenticated", False):
        raise ServiceError("not_authenticated", "Sign in to report comments.", 401)
    if not isinstance(reason, str):
        raise ServiceError("invalid_reason", "reason must be a string.")
    if comment.status != Comment.Status.VISIBLE and not can_moderate(reporter, comment.video):
        raise ServiceError("not_found", f"No comment {comment.pk}.", 404)
    _raise_if_banned(active_ban(comment.video, reporter))  # banned viewers are read-only: no stream events either
    try:
        with transaction.atomic():
            report = Report.objects.create(comment=comment, reporter=reporter, reason=_reason(reason.strip()))
    except IntegrityError:
        raise ServiceError("already_reported", "You have already reported this comment.", 409) from None
    data = {
        "id": report.pk,
        "comment": comment.pk,
        "comment_cursor": comment.cursor,
        "reporter": {"id": reporter.pk, "name": reporter.get_username()},
        "reason": report.reason,
    }
    try:
        prev, appended = hotstore.append(comment.video_id, "report.created", data, audience=hotstore.MOD_AUDIENCE)
    except UNAVAILABLE_ERRORS:
        log.warning("report %s stored but not announced: Redis unavailable", report.pk)
        return report
    publish(
        comment.video_id,
        {
            "type": "report.created",
            "id": appended,
            "prev": prev,
            "data": dict(data, cursor=appended),
            "audience": hotstore.MOD_AUDIENCE,
        },
    )
    return report


def resolve_report(report: Report, by, reason: str = "") -> Report:
    _require_moderator(by, report.comment.video)
    if report.resolved:
        return report
    with transaction.atomic():
        report.resolved, report.resolved_by, report.resolved_at = True, by, timezone.now()
        report.save(update_fields=["resolved", "resolved_by", "resolved_at"])
        _audit(
            by,
            "resolve_report",
            video=report.comment.video,
            comment=report.comment,
            target_user=report.comment.author,
            reason=reason,
            report_id=report.pk,
        )
    return report


# -- video settings -------------------------------------------------------------------------

VIDEO_FIELDS = ("slow_mode_seconds", "comments_enabled", "state")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # a setting update_video() leaves as it is

# The states a video may move to from each (ARCHITECTURE.md, "Moderation"): a
# broadcast goes on air once and ends once; a new broadcast is a new video.
STATE_TRANSITIONS = {
    Video.State.SCHEDULED: (Video.State.LIVE, Video.State.ENDED),
    Video.State.LIVE: (Video.State.ENDED,),
    Video.State.ENDED: (),
}


def update_video(
    video: Video, by, *, slow_mode_seconds: Any = UNSET, comments_enabled: Any = UNSET, state: Any = UNSET
) -> Video:
    """A moderator's slow mode, comments on/off and state change (UNSET: left
    as it is); each change audited, announced live and relayed to other regions."""
    _require_moderator(by, video)
    given = (("slow_mode_seconds", slow_mode_seconds), ("comments_enabled", comments_enabled), ("state", state))
    return _apply_video_change(video, by, {name: value for name, value in given if value is not UNSET})


def _check_video_changes(changes: dict[str, Any]) -> None:
    if "slow_mode_seconds" in changes:
        value = changes["slow_mode_seconds"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 86400:
            raise ServiceError("invalid_slow_mode", "slow_mode_seconds must be a whole number from 0 to 86400.")
    if "comments_enabled" in changes and not isinstance(changes["comments_enabled"], bool):
        raise ServiceError("invalid_comments_enabled", "comments_enabled must be true or false.")
    if "state" in changes and changes["state"] not in Video.State.values:
        raise ServiceError("invalid_state", f"state must be one of {', '.join(Video.State.values)}.")


def _check_transition(current: str, new: str) -> None:
    allowed = STATE_TRANSITIONS[Video.State(current)]
    if new not in allowed:
        can = f"it can only become {' or '.join(allowed)}" if allowed else "an ended video stays ended"
        raise ServiceError(
            "invalid_state_transition",
            f"A {current} video cannot become {new}; {can}.",
            allowed=list(allowed),
        )


def _apply_video_change(video: Video, by, changes: dict[str, Any], origin: str = "") -> Video:
    """update_video() without the moderator check. `origin`: the change was
    accepted by that other region (ingest): applied as it was there, not
    checked against the transitions again, and not relayed back."""
    _check_video_changes(changes)
    if not changes:
        return video
    now = timezone.now()
    with transaction.atomic():
        locked = Video.objects.select_for_update().get(pk=video.pk)
        changed = {k: v for k, v in changes.items() if getattr(locked, k) != v}
        if not changed:
            video.refresh_from_db()
            return video
        if "state" in changed and not origin:
            _check_transition(locked.state, changed["state"])
        for field, value in changed.items():
            setattr(locked, field, value)
        if "state" in changed:
            _stamp_state(locked, now)
        locked.save()
        for field, value in changed.items():
            audit = _audit(
                by, field if field != "state" else "video_state", video=locked, value=value, **_from_region(origin)
            )
        if not origin:
            _to_regions("video", locked, {"changes": {field: getattr(locked, field) for field in changed}}, audit)
        announcements: list[tuple[str, dict[str, Any]]] = []
        if "state" in changed:
            announcements.append(("video.state", {"state": locked.state}))
        if {"slow_mode_seconds", "comments_enabled"} & set(changed):
            announcements.append(
                (
                    "video.settings",
                    {"slow_mode_seconds": locked.slow_mode_seconds, "comments_enabled": locked.comments_enabled},
                )
            )
        appended_events = []
        try:
            for event_type, data in announcements:
                prev, appended = hotstore.append(video.pk, event_type, data)
                appended_events.append((event_type, prev, appended, dict(data, cursor=appended)))
        except UNAVAILABLE_ERRORS as exc:
            raise Unavailable("redis") from exc

        def announce():
            for event_type, prev, appended, payload in appended_events:
                publish(video.pk, {"type": event_type, "id": appended, "prev": prev, "data": payload})

        transaction.on_commit(announce)
    video.refresh_from_db()
    return video


def _stamp_state(video: Video, now) -> None:
    """started_at / ended_at as the state says: on air since, ended at."""
    if video.state == Video.State.SCHEDULED:
        video.started_at = video.ended_at = None
    elif video.state == Video.State.LIVE:
        video.started_at = video.started_at or now
        video.ended_at = None
    else:
        video.ended_at = now


# -- changes made in other regions (regions/relay.py delivers them) -----------------------


def ingest_remote_event(
    origin: str, event_id: str, kind: str, video_id: int | None, data: dict, stream: str | None = None
) -> str:
    """Apply one change that region `origin` accepted, as if it were made here.

    The change goes through this module like a local one (database row, this
    region's stream, publish to this region's viewers), marked with its
    origin and never put on this region's own region stream: no echo.

    Exactly once: `event_id` is the change's position in the origin's region
    stream `stream` (one per Redis host there, e.g. "east/0"), which the relay
    delivers in order. The last one applied per stream
    (regions.IngestPosition) moves in the same transaction as the change, so
    a change delivered twice is applied once. Returns "applied", "duplicate"
    or "skipped: <why>" (a change that cannot apply here, e.g. an unknown
    video: logged, not retried).
    """
    from regions.models import IngestPosition

    if origin == settings.REGION:
        return "skipped: own region"
    position = cursors.to_position(event_id)
    with transaction.atomic():
        mark, _ = IngestPosition.objects.select_for_update().get_or_create(origin=stream or origin)
        if position <= mark.position:
            return "duplicate"
        mark.position = position
        mark.save(update_fields=["position", "updated"])
        try:
            with transaction.atomic():
                outcome = _apply_remote(origin, kind, video_id, data)
        except Unavailable:
            raise  # Redis or the database is away: nothing applied, the loop tries again
        except (KeyError, TypeError, ValueError, ServiceError) as exc:
            outcome = f"skipped: cannot apply ({exc!r})"  # malformed: retrying would not help
    if outcome != "applied":
        log.warning("change %s %s from region %s %s", kind, event_id, origin, outcome)
    return outcome


def comment_by_global_id(global_id: str) -> Comment | None:
    region, _, number = str(global_id).rpartition(":")
    if not region or not number.isdigit():
        return None
    if region == settings.REGION:
        return Comment.objects.in_stream().filter(pk=int(number), origin_region="").first()
    return Comment.objects.in_stream().filter(origin_region=region, origin_id=int(number)).first()


def _regional_user(identity, origin: str, create: bool = True):
    """The account here of the user a change from region `origin` names by
    global identity (regions/identity.py); None when it names no one."""
    from regions import identity as identities

    parsed = identities.parse_identity(identity, default_region=origin)
    if parsed is None:
        return None
    return identities.user_for(*parsed, create=create)


# The actions a relayed status change may carry (audit row names).
_REMOTE_STATUS_ACTIONS = ("remove", "restore", "approve", "delete_own")


def _apply_remote(origin: str, kind: str, video_id: int | None, data: dict) -> str:
    from django.utils.dateparse import parse_datetime

    video = None
    if video_id is not None:
        # Videos have the same primary key in every region.
        video = Video.objects.filter(pk=video_id).first()
        if video is None:
            return f"skipped: no video {video_id} here"
    if kind == "comment":
        region, _, number = str(data.get("global_id", "")).rpartition(":")
        if region != origin or not number.isdigit() or video is None:
            return "skipped: malformed comment"
        if Comment.objects.filter(origin_region=origin, origin_id=int(number)).exists():
            return "duplicate"
        text = data.get("text")
        if not isinstance(text, str) or not 0 < len(text) <= settings.COMMENT_MAX_LENGTH:
            return "skipped: malformed text"
        # The author is always a user of the origin region: (origin, their id there).
        author = data.get("author")
        author = _regional_user({**author, "region": origin}, origin) if isinstance(author, dict) else None
        if author is None:
            return "skipped: malformed author"
        _store_and_append(
            video,
            author,
            text,
            "",
            held=data.get("status") == Comment.Status.HELD,
            origin_region=origin,
            origin_id=int(number),
            created=parse_datetime(data["created"]) if data.get("created") else None,
        )
        return "applied"
    if kind == "status":
        comment = comment_by_global_id(data.get("comment", ""))
        if comment is None:
            return f"skipped: no comment {data.get('comment')!r} here"
        if data.get("status") not in Comment.Status.values:
            return "skipped: malformed status"
        action = str(data["action"]) if data.get("action") in _REMOTE_STATUS_ACTIONS else "remove"
        _change_status(comment, data["status"], None, action, _reason(data.get("reason")), origin=origin)
        return "applied"
    if kind == "ban":
        user = _regional_user(data.get("user"), origin)
        if user is None:
            return "skipped: no such user (bans name users by region and id)"
        if user.is_staff:
            return "skipped: staff are banned only where they are staff"
        expires_at = parse_datetime(data["expires_at"]) if data.get("expires_at") else None
        ban = Ban.objects.create(user=user, video=video, expires_at=expires_at, reason=_reason(data.get("reason")))
        _audit(
            None,
            "timeout" if expires_at else "ban",
            video=video,
            target_user=user,
            reason=ban.reason,
            ban_id=ban.pk,
            origin=origin,
        )
        return "applied"
    if kind == "unban":
        user = _regional_user(data.get("user"), origin, create=False)
        if user is None:
            return "skipped: no such user here"
        now = timezone.now()
        lifted = (
            Ban.objects.filter(user=user, video=video, lifted_at__isnull=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .update(lifted_at=now)
        )
        _audit(
            None, "unban", video=video, target_user=user, reason=_reason(data.get("reason")), bans=lifted, origin=origin
        )
        return "applied"
    if kind == "video":
        if video is None:
            return "skipped: no video"
        changes = {k: v for k, v in (data.get("changes") or {}).items() if k in VIDEO_FIELDS}
        _apply_video_change(video, None, changes, origin=origin)
        return "applied"
    return f"skipped: unknown kind {kind!r}"
