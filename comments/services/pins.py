"""A video's pin: one of its comments, or an announcement, at the top of the
chat. Moderators only; each pin and unpin audited, appended to the video's
stream (`pin`, `pin.cleared`), announced live and relayed to other regions.

Expiry is lazy: a pin whose `expires_at` has passed counts as none (a stream
open does not send it; clients hide it at `expires`), and its row goes at the
next pin or unpin -- no `pin.cleared` is appended when it runs out.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.db import DatabaseError, transaction
from django.utils import timezone

from comments import events, hotstore
from comments.models import Comment, Pin
from comments.services.moderation import _audit, _from_region, _identity, _to_regions
from comments.services.rules import clean_text, require_moderator
from comments.services.store import _undo
from livecomment.lib.errors import ServiceError, Unavailable
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS
from videos.models import Video

PIN_MAX_SECONDS = 7 * 86400  # an announcement lasts at most a week (no duration: until unpinned)


def pin_comment(video: Video, by, comment: Comment) -> Pin:
    """Pin one of the video's visible comments (replacing any pin)."""
    require_moderator(by, video)
    if comment.video_id != video.pk or comment.position is None:
        raise ServiceError("not_found", f"No comment {comment.pk} in this video.", 404)
    if comment.status != Comment.Status.VISIBLE:
        raise ServiceError("invalid_state", f"Only visible comments can be pinned; this one is {comment.status}.", 409)
    return _apply_pin(video, by, comment, None, None)


def pin_announcement(video: Video, by, text, duration_s=None) -> Pin:
    """Pin an announcement, for `duration_s` seconds (None: until unpinned)."""
    require_moderator(by, video)
    text = clean_text(text)
    if duration_s is not None and (
        isinstance(duration_s, bool) or not isinstance(duration_s, int) or not 1 <= duration_s <= PIN_MAX_SECONDS
    ):
        raise ServiceError(
            "invalid_duration", f"duration_s must be a whole number from 1 to {PIN_MAX_SECONDS}, or null."
        )
    expires_at = timezone.now() + timedelta(seconds=duration_s) if duration_s else None
    return _apply_pin(video, by, None, text, expires_at)


def unpin(video: Video, by) -> None:
    """Take the video's pin down; not_found (404) when it has none (or it ran out)."""
    require_moderator(by, video)
    try:
        cleared = _clear_pin(video.pk, by, "unpin")
    except DatabaseError as exc:
        raise Unavailable("database") from exc
    if not cleared:
        raise ServiceError("not_found", "This video has no pin.", 404)


def current_pin(video_id: int) -> Pin | None:
    """The video's pin now (None when it has none, or it ran out)."""
    pin = Pin.objects.filter(video_id=video_id).first()
    if pin is None or (pin.expires_at is not None and pin.expires_at <= timezone.now()):
        return None
    return pin


# Made and cleared here alone, for a local moderator and for a change another
# region made (`origin`: audited as such, not relayed back).


def _apply_pin(video: Video, by, comment: Comment | None, text: str | None, expires_at, origin: str = "") -> Pin:
    data = dict(events.pin_data(comment, text, by, expires_at))
    appended = None
    try:
        with transaction.atomic():
            Video.objects.select_for_update().filter(pk=video.pk).first()  # one pin change at a time per video
            if comment is not None and not _still_visible(comment):
                # Removed since the caller read it: its removal found no pin to take down.
                raise ServiceError(
                    "invalid_state", f"Only visible comments can be pinned; comment {comment.pk} is not.", 409
                )
            try:
                prev, appended = hotstore.append(video.pk, "pin", data)
            except UNAVAILABLE_ERRORS as exc:
                raise Unavailable("redis") from exc
            pin, _ = Pin.objects.update_or_create(
                video_id=video.pk,
                defaults={
                    "comment": comment,
                    "text": text or "",
                    "by": by,
                    "expires_at": expires_at,
                    "cursor": appended,
                    "data": json.dumps(dict(data, cursor=appended), ensure_ascii=False, separators=(",", ":")),
                },
            )
            audit = _audit(
                by,
                "pin",
                video=video,
                comment=comment,
                target_user=comment.author if comment is not None else None,
                text=text,
                expires=data["expires"],
                cursor=appended,
                **_from_region(origin),
            )
            if not origin:
                _to_regions(
                    "pin",
                    video,
                    {
                        "comment": comment.global_id if comment is not None else None,
                        "text": text,
                        "expires_at": data["expires"],
                        "by": _identity(by),
                    },
                    audit,
                )
            events.announce(video.pk, events.event("pin", (prev, appended), data))
    except DatabaseError as exc:
        if appended is not None:  # the database has no such pin: neither may a resume
            _undo(hotstore.delete_entry, video.pk, appended)
        raise Unavailable("database") from exc
    return pin


def _still_visible(comment: Comment) -> bool:
    """The comment's status now, its row locked: a removal either finished
    before (then this says so) or waits for the pin and then takes it down."""
    locked = Comment.objects.select_for_update().filter(pk=comment.pk).values_list("status", flat=True).first()
    return locked == Comment.Status.VISIBLE


def _clear_pin(video_id: int, by, action: str, origin: str = "", of_comment: Comment | None = None) -> bool:
    """Delete the video's pin (only if it pins `of_comment`, when given) and
    append `pin.cleared`; False when there was no pin, or it had run out
    (then its row goes without an event)."""
    appended = None
    try:
        with transaction.atomic():
            found = Pin.objects.select_for_update().filter(video_id=video_id)
            if of_comment is not None:
                found = found.filter(comment=of_comment)
            pin = found.first()
            if pin is None:
                return False
            pin.delete()
            if pin.expires_at is not None and pin.expires_at <= timezone.now():
                return False
            try:
                prev, appended = hotstore.append(video_id, "pin.cleared", {})
            except UNAVAILABLE_ERRORS as exc:
                raise Unavailable("redis") from exc
            because = {"because": "comment removed"} if of_comment is not None else {}
            audit = _audit(
                by,
                action,
                video=Video(pk=video_id),
                comment=pin.comment,
                pinned=pin.cursor,
                **because,
                **_from_region(origin),
            )
            if not origin and of_comment is None:
                _to_regions("unpin", Video(pk=video_id), {"by": _identity(by)}, audit)
            events.announce(video_id, events.event("pin.cleared", (prev, appended), {}))
    except DatabaseError:
        if appended is not None:
            _undo(hotstore.delete_entry, video_id, appended)
        raise  # as it came: a status change that called this undoes its own part
    return True
