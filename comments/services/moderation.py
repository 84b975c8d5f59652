"""Moderators' writes: status changes (remove, restore, approve, delete own),
bans and time-outs, blocked terms and reports, each audited, announced live
and noted for the relay to other regions."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from comments import cursors, events, hotstore
from comments.models import Ban, BlockedTerm, Comment, ModerationAction, Report
from comments.services.rules import (
    _raise_if_banned,
    _reason,
    active_ban,
    can_moderate,
    forget_terms,
    require_moderator,
)
from comments.services.store import _undo
from livecomment.lib.errors import ServiceError, Unavailable
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS
from videos.models import Video

log = logging.getLogger(__name__)


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
    region_entry = appended = None
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
                    data = dict(events.removed_data(locked))
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
            events.announce(video_id, events.event(event_type, (prev, appended), data, audience, of_comment=locked))
            if not visible:
                from comments.services.pins import _clear_pin  # pins builds on this module

                # A removed comment comes down from the top too (in every region: each removes it).
                _clear_pin(video_id, by, "unpin", origin, of_comment=locked)
    except DatabaseError as exc:
        # The database keeps the old status; put the hidden flag back in step.
        _undo(hotstore.set_hidden, video_id, comment.pk, comment.status != Comment.Status.VISIBLE)
        if appended is not None:  # nor may a resume replay the change
            _undo(hotstore.delete_entry, video_id, appended)
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
    require_moderator(by, comment.video)
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


REMOVE_RECENT_SECONDS = 3600


def ban_user(
    video: Video | None, user, by, duration_seconds: int | None = None, reason: str = "", remove_recent: bool = False
) -> Ban:
    """Ban `user` from `video` (None: site-wide, staff only) for a while or for good.

    With remove_recent, their visible comments of the last hour in that video
    are removed too, each one live for every viewer.
    """
    require_moderator(by, video)
    if duration_seconds is not None and (not isinstance(duration_seconds, int) or duration_seconds < 1):
        raise ServiceError(
            "invalid_duration", "duration_seconds must be a positive whole number, or null for a permanent ban."
        )
    if user.pk == getattr(by, "pk", None):
        raise ServiceError("invalid_target", "You cannot ban yourself.")
    if user.is_staff and not by.is_staff:
        raise ServiceError("permission_denied", "Only staff may ban staff.", 403)
    expires_at = timezone.now() + timedelta(seconds=duration_seconds) if duration_seconds else None
    ban = _create_ban(video, user, by, expires_at, reason, duration_seconds=duration_seconds)
    if remove_recent and video is not None:
        since = timezone.now() - timedelta(seconds=REMOVE_RECENT_SECONDS)
        for comment in Comment.objects.in_stream().filter(
            video=video, author=user, status=Comment.Status.VISIBLE, created__gte=since
        ):
            remove_comment(comment, by, reason=f"ban: {reason}" if reason else "ban")
    return ban


def lift_ban(video: Video | None, user, by, reason: str = "") -> int:
    """End every active ban of `user` in `video` (or the site-wide ones)."""
    require_moderator(by, video)
    return _lift_bans(video, user, by, reason)


# A ban is made and lifted here alone, for a local moderator and for a change
# another region made (`origin`: audited as such, not relayed back).


def _create_ban(
    video: Video | None, user, by, expires_at, reason, duration_seconds: int | None = None, origin: str = ""
) -> Ban:
    with transaction.atomic():
        ban = Ban.objects.create(user=user, video=video, expires_at=expires_at, reason=_reason(reason), created_by=by)
        details: dict[str, Any] = {} if origin else {"duration_seconds": duration_seconds}
        audit = _audit(
            by,
            "timeout" if expires_at else "ban",
            video=video,
            target_user=user,
            reason=ban.reason,
            **details,
            ban_id=ban.pk,
            **_from_region(origin),
        )
        if not origin:
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
    return ban


def _lift_bans(video: Video | None, user, by, reason, origin: str = "") -> int:
    now = timezone.now()
    with transaction.atomic():
        lifted = (
            Ban.objects.filter(user=user, video=video, lifted_at__isnull=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            .update(lifted_at=now)
        )
        # A change from another region is audited even when nothing was left to lift here.
        if lifted or origin:
            audit = _audit(
                by, "unban", video=video, target_user=user, reason=_reason(reason), bans=lifted, **_from_region(origin)
            )
            if not origin:
                _to_regions("unban", video, {"user": _identity(user), "reason": _reason(reason)}, audit)
    return lifted


def save_blocked_term(term: BlockedTerm, by) -> BlockedTerm:
    require_moderator(by, term.video)
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
    forget_terms()
    return term


def delete_blocked_term(term: BlockedTerm, by) -> None:
    require_moderator(by, term.video)
    with transaction.atomic():
        _audit(by, "term_delete", video=term.video, term=term.term)
        term.delete()
    forget_terms()


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
    data = dict(events.report_data(report))
    try:
        prev, appended = hotstore.append(comment.video_id, "report.created", data, audience=hotstore.MOD_AUDIENCE)
    except UNAVAILABLE_ERRORS:
        log.warning("report %s stored but not announced: Redis unavailable", report.pk)
        return report
    events.announce(comment.video_id, events.event("report.created", (prev, appended), data, hotstore.MOD_AUDIENCE))
    return report


def resolve_report(report: Report, by, reason: str = "") -> Report:
    require_moderator(by, report.comment.video)
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
