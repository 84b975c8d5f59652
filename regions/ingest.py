"""Changes made in other regions, applied here (the relay delivers them:
regions/relay.py, `manage.py ingest`).

Each one goes through the write path's ingest-only entry points
(comments.services.remote), never through a public service function.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils.dateparse import parse_datetime

from comments import cursors, services
from comments.models import Comment
from comments.services import remote
from livecomment.lib.errors import ServiceError, Unavailable
from regions import identity as identities
from regions.models import IngestPosition
from videos.models import Video

log = logging.getLogger(__name__)


def ingest_remote_event(
    origin: str, event_id: str, kind: str, video_id: int | None, data: dict, stream: str | None = None
) -> str:
    """Apply one change that region `origin` accepted, as if it were made here.

    The change goes through the write path like a local one (database row, this
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
    parsed = identities.parse_identity(identity, default_region=origin)
    if parsed is None:
        return None
    return identities.user_for(*parsed, create=create)


# The actions a relayed status change may carry (audit row names).
_REMOTE_STATUS_ACTIONS = ("remove", "restore", "approve", "delete_own")


def _offset_ms(value) -> int | None:
    """The origin's offset of a comment, as it was there (not computed again
    against this region's started_at, which differs by the relay's delay)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53:
        return value
    return None


def _apply_remote(origin: str, kind: str, video_id: int | None, data: dict) -> str:
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
        roles = data["author"].get("roles")
        remote.store_remote_comment(
            video,
            author,
            text,
            held=data.get("status") == Comment.Status.HELD,
            origin=origin,
            origin_id=int(number),
            created=parse_datetime(data["created"]) if data.get("created") else None,
            offset_ms=_offset_ms(data.get("offset_ms")),
            roles=[r for r in roles if isinstance(r, str)] if isinstance(roles, list) else (),
        )
        return "applied"
    if kind == "status":
        comment = comment_by_global_id(data.get("comment", ""))
        if comment is None:
            return f"skipped: no comment {data.get('comment')!r} here"
        if data.get("status") not in Comment.Status.values:
            return "skipped: malformed status"
        action = str(data["action"]) if data.get("action") in _REMOTE_STATUS_ACTIONS else "remove"
        remote.apply_remote_status(comment, data["status"], action, data.get("reason"), origin)
        return "applied"
    if kind == "ban":
        user = _regional_user(data.get("user"), origin)
        if user is None:
            return "skipped: no such user (bans name users by region and id)"
        if user.is_staff:
            return "skipped: staff are banned only where they are staff"
        expires_at = parse_datetime(data["expires_at"]) if data.get("expires_at") else None
        remote.apply_remote_ban(video, user, expires_at, data.get("reason"), origin)
        return "applied"
    if kind == "unban":
        user = _regional_user(data.get("user"), origin, create=False)
        if user is None:
            return "skipped: no such user here"
        remote.apply_remote_unban(video, user, data.get("reason"), origin)
        return "applied"
    if kind == "video":
        if video is None:
            return "skipped: no video"
        changes = {k: v for k, v in (data.get("changes") or {}).items() if k in services.VIDEO_FIELDS}
        remote.apply_remote_video_change(video, changes, origin)
        return "applied"
    if kind in ("pin", "unpin"):
        by = _regional_user(data.get("by"), origin)
        if video is None or by is None:
            return "skipped: malformed pin"
        if kind == "unpin":
            remote.apply_remote_unpin(video, by, origin)
            return "applied"
        comment = None
        if data.get("comment") is not None:
            comment = comment_by_global_id(data["comment"])
            if comment is None or comment.video_id != video.pk:
                return f"skipped: no comment {data.get('comment')!r} here"
        expires_at = parse_datetime(data["expires_at"]) if data.get("expires_at") else None
        remote.apply_remote_pin(video, by, comment, data.get("text"), expires_at, origin)
        return "applied"
    return f"skipped: unknown kind {kind!r}"
