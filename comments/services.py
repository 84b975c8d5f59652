"""The write path. Every change to a comment goes through a function here.

Views, consumers, admin actions and management commands call these; nothing
else saves a comment or broadcasts one. Each function validates, writes the
database (the system of record) and the video's Redis stream (the hot store)
so that a failure of either leaves nothing half-written, and only after the
database commit hands the event to `dispatcher.publish`.

The order of the two writes (ARCHITECTURE.md, "The path of one comment"):

1. INSERT the row inside a transaction; it is invisible to everyone until the
   transaction commits, and has no stream position yet.
2. XADD the event to the stream (a Lua script that also returns the previous
   position, for gap detection). If Redis fails, the transaction rolls back:
   nothing anywhere.
3. UPDATE the row with its position and COMMIT. If the commit fails, the
   stream entry is deleted again (XDEL) before the error is answered; live
   delivery has not happened (publish runs on commit only).
4. publish(): the event goes to every gateway serving the video.

Readers only ever see committed rows that carry a position, and stream
entries whose commit succeeded -- except inside the window between XADD and
COMMIT, one UPDATE long (ARCHITECTURE.md, "Known limits").
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from comments import events, hotstore
from comments.models import Comment
from dispatcher import publish
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


def can_moderate(user, video: Video) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    return video.moderators.filter(pk=user.pk).exists()


def _check_video_open(video: Video) -> None:
    if video.state != Video.State.LIVE:
        raise ServiceError("video_not_live", f"This video is {video.state}; comments are closed.", 409)
    if not video.comments_enabled:
        raise ServiceError("comments_disabled", "Comments are turned off for this video.", 403)


def post_comment(video: Video, author, text, idempotency_key=None) -> PostResult:
    """Validate, deduplicate, store, append to the stream, then publish."""
    text = clean_text(text)
    idempotency_key = clean_idempotency_key(idempotency_key)
    if not author.is_authenticated:
        raise ServiceError("not_authenticated", "Sign in to post comments.", 401)
    _check_video_open(video)

    slow = 0 if can_moderate(author, video) else video.slow_mode_seconds
    _retry_undos()
    try:
        reservation = hotstore.reserve(video.pk, author.pk, text, idempotency_key, slow)
    except UNAVAILABLE_ERRORS as exc:
        log.warning("redis unavailable on reserve: %s", exc)
        raise Unavailable("redis") from exc

    if reservation.outcome == "idem" and reservation.comment_id is None:
        reservation = _retake_abandoned_key(video, author, text, idempotency_key, slow, reservation)
    if reservation.outcome == "idem":
        return PostResult(_original_for_key(video, author, idempotency_key, reservation.comment_id), False)
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

    try:
        comment = _store_and_append(video, author, text, idempotency_key or "")
    except BaseException:
        _undo(hotstore.release, video.pk, reservation.keys)
        raise

    if idempotency_key:
        try:
            hotstore.remember_idempotent(video.pk, author.pk, idempotency_key, comment.pk)
        except UNAVAILABLE_ERRORS:
            pass  # the database lookup in _original_for_key still finds it
    return PostResult(comment, True)


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
    window = timezone.now() - timezone.timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
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
            "request_in_progress", "A request with this Idempotency-Key is still in progress.", 409,
            headers={"Retry-After": "1"},
        )
    return found


def _store_and_append(video: Video, author, text: str, idempotency_key: str) -> Comment:
    appended: str | None = None
    try:
        with transaction.atomic():
            comment = Comment.objects.create(
                video=video, author=author, text=text, idempotency_key=idempotency_key
            )
            data = events.comment_data(comment)
            try:
                prev, appended = hotstore.append(video.pk, "comment", dict(data), comment_id=comment.pk)
            except UNAVAILABLE_ERRORS as exc:
                log.warning("redis unavailable on append: %s", exc)
                raise Unavailable("redis") from exc
            comment.set_cursor(appended)
            Comment.objects.filter(pk=comment.pk).update(cursor=comment.cursor, position=comment.position)
            _fail_point("before_commit")
            payload = dict(data, cursor=appended)
            transaction.on_commit(
                lambda: publish(video.pk, {"type": "comment", "id": appended, "prev": prev, "data": payload})
            )
    except DatabaseError as exc:
        log.warning("database write failed: %s", exc)
        if appended is not None:
            _undo_append(video.pk, appended)
        raise Unavailable("database") from exc
    except BaseException:
        if appended is not None:
            _undo_append(video.pk, appended)
        raise
    return comment


def _undo_append(video_id: int, entry_id: str) -> None:
    _undo(hotstore.delete_entry, video_id, entry_id)


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
FAIL_POINTS: dict[str, object] = {}


def _fail_point(name: str) -> None:
    action = FAIL_POINTS.get(name)
    if action is not None:
        action()


def remove_comment(comment: Comment, by, reason: str = "") -> Comment:
    """Hide a comment from everyone (author deleting their own, or a moderator)."""
    if comment.status == Comment.Status.REMOVED:
        return comment
    video_id = comment.video_id
    try:
        with transaction.atomic():
            locked = Comment.objects.select_for_update().get(pk=comment.pk)
            if locked.status == Comment.Status.REMOVED:
                return locked
            try:
                hotstore.set_hidden(video_id, locked.pk, True)
                prev, appended = hotstore.append(
                    video_id, "comment.removed", {"id": locked.pk},
                    comment_id=None, original_cursor=locked.cursor or "",
                )
            except UNAVAILABLE_ERRORS as exc:
                raise Unavailable("redis") from exc
            from comments import cursors

            locked.status = Comment.Status.REMOVED
            locked.status_position = cursors.to_position(appended)
            locked.save(update_fields=["status", "status_position"])
            payload = {"id": locked.pk, "cursor": locked.cursor}
            transaction.on_commit(
                lambda: publish(video_id, {"type": "comment.removed", "id": appended, "prev": prev, "data": payload})
            )
    except DatabaseError as exc:
        # The comment stays visible in the database; undo the hidden flag so
        # the stream agrees with it. The appended removal event is harmless
        # for clients (removing what they show) but keep the stores in step.
        try:
            hotstore.set_hidden(video_id, comment.pk, False)
        except UNAVAILABLE_ERRORS:
            pass
        raise Unavailable("database") from exc
    comment.refresh_from_db()
    return comment


def delete_own_comment(comment: Comment, user) -> Comment:
    if not user.is_authenticated:
        raise ServiceError("not_authenticated", "Sign in to delete comments.", 401)
    if comment.author_id != user.pk and not can_moderate(user, comment.video):
        raise ServiceError("permission_denied", "You can only delete your own comments.", 403)
    return remove_comment(comment, by=user)
