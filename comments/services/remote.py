"""Entry points for region ingest alone (regions/ingest.py).

A change another region accepted is applied here as it was there: marked
with its origin, not checked again against local rules, and not put back on
this region's own region stream. No view, consumer or admin action calls
these; they are not re-exported by the package.
"""

from __future__ import annotations

from typing import Any

from comments.models import Ban, Comment
from comments.services.moderation import _change_status, _create_ban, _lift_bans
from comments.services.pins import _apply_pin, _clear_pin
from comments.services.rules import ROLES, _reason, clean_text
from comments.services.store import _Row, _store_and_append_many
from comments.services.video_settings import _apply_video_change
from livecomment.lib.errors import ServiceError
from videos.models import Video


def store_remote_comment(
    video: Video,
    author,
    text: str,
    *,
    held: bool,
    origin: str,
    origin_id: int,
    created,
    offset_ms: int | None,
    roles=(),
) -> Comment:
    """`roles`: the author's roles as the origin region stored them (unknown names are dropped)."""
    known = " ".join(role for role in ROLES if role in roles)
    row = _Row(
        author,
        text,
        "",
        held,
        origin_region=origin,
        origin_id=origin_id,
        created=created,
        offset_ms=offset_ms,
        roles=known,
    )
    return _store_and_append_many(video, [row])[0]


def apply_remote_status(comment: Comment, status: str, action: str, reason, origin: str) -> Comment:
    return _change_status(comment, status, None, action, _reason(reason), origin=origin)


def apply_remote_ban(video: Video | None, user, expires_at, reason, origin: str) -> Ban:
    return _create_ban(video, user, None, expires_at, reason, origin=origin)


def apply_remote_unban(video: Video | None, user, reason, origin: str) -> int:
    return _lift_bans(video, user, None, reason, origin=origin)


def apply_remote_video_change(video: Video, changes: dict[str, Any], origin: str) -> Video:
    return _apply_video_change(video, None, changes, origin=origin)


def apply_remote_pin(video: Video, by, comment: Comment | None, text, expires_at, origin: str) -> None:
    """A pin another region made (by `by`, their account here): the comment, or the announcement's text."""
    if comment is None:
        text = clean_text(text)
    elif comment.status != Comment.Status.VISIBLE:
        return  # removed here meanwhile: its removal took the pin down
    try:
        _apply_pin(video, by, comment, None if comment is not None else text, expires_at, origin=origin)
    except ServiceError as exc:
        if comment is None or exc.code != "invalid_state":
            raise
        # removed here since the check above: its removal took the pin down


def apply_remote_unpin(video: Video, by, origin: str) -> None:
    _clear_pin(video.pk, by, "unpin", origin)
