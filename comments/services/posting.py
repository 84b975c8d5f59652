"""Posting comments: one (`post_comment`) or a batch to one video
(`post_comments`, a group commit) -- checks, dedup reservations, outcomes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from comments import writekeys
from comments.models import Ban, Comment
from comments.services.rules import (
    _check_video_open,
    _raise_if_banned,
    _screen_terms,
    active_bans,
    author_roles,
    can_moderate,
    clean_idempotency_key,
    clean_text,
)
from comments.services.store import _retry_undos, _Row, _store_and_append_many, _undo
from livecomment.lib.errors import ServiceError, Unavailable
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS
from videos.models import Video

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostResult:
    comment: Comment
    created: bool  # False: an earlier request with the same Idempotency-Key


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
    roles: str = ""  # Comment.author_roles
    reservation: writekeys.Reservation | None = None


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
        slow = 0 if moderator else video.slow_mode_seconds
        accepted.append(_Accepted(index, author, text, key, held, slow, author_roles(author, video)))

    if accepted:
        _retry_undos()
        try:
            reservations = writekeys.reserve_many(
                video.pk, [writekeys.Claim(a.author.pk, a.text, a.key, a.slow) for a in accepted]
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
            if not isinstance(written_first, PostResult):
                outcomes[item.index] = written_first  # not written: the key is free again, not "used"
            elif item.text != first.text:
                outcomes[item.index] = _key_reused()
            else:
                outcomes[item.index] = PostResult(written_first.comment, False)
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
        original = _original_for_key(video, item.author, item.key, reservation.comment_id)
        if original.text != item.text:
            raise _key_reused()
        return PostResult(original, False)
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


def _key_reused() -> ServiceError:
    """A repeated Idempotency-Key whose body differs from its first request's
    (the IETF Idempotency-Key draft's 422). The body's fingerprint is the
    original comment itself: its stored text is the first request's text as
    clean_text() left it (a post carries nothing else, and text is never
    edited), so the check needs no value of its own in Redis and reads
    nothing the replay does not read anyway."""
    return ServiceError(
        "idempotency_key_reused",
        "This Idempotency-Key was already used with a different request body; use a new key for a new comment.",
        422,
    )


def _write_accepted(video: Video, items: list[_Accepted]) -> list[Outcome]:
    keys = [key for item in items for key in (item.reservation.keys if item.reservation else ())]
    try:
        comments = _store_and_append_many(
            video, [_Row(item.author, item.text, item.key or "", held=item.held, roles=item.roles) for item in items]
        )
    except BaseException as exc:
        _undo(writekeys.release, video.pk, keys)
        if isinstance(exc, Unavailable):
            return [exc for _ in items]
        raise
    remembered = [(item.author.pk, item.key, c.pk) for item, c in zip(items, comments, strict=True) if item.key]
    try:
        writekeys.remember_idempotent(video.pk, remembered)
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
        if writekeys.drop_abandoned_idempotency_key(video.pk, author.pk, key, IN_FLIGHT_MAX_SECONDS):
            return writekeys.reserve(video.pk, author.pk, text, key, slow)
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
