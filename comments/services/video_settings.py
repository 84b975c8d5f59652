"""A video's slow mode, comments on/off and state: checked, audited,
announced live and relayed to other regions."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from comments import events, hotstore
from comments.services.moderation import _audit, _from_region, _to_regions
from comments.services.rules import require_moderator
from livecomment.lib.errors import ServiceError, Unavailable
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS
from videos.models import Video

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
    require_moderator(by, video)
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
            announcements.append(("video.state", dict(events.video_state_data(locked))))
        if {"slow_mode_seconds", "comments_enabled"} & set(changed):
            announcements.append(("video.settings", dict(events.video_settings_data(locked))))
        appended_events = []
        try:
            for event_type, data in announcements:
                positions = hotstore.append(video.pk, event_type, data)
                appended_events.append(events.event(event_type, positions, data))
        except UNAVAILABLE_ERRORS as exc:
            raise Unavailable("redis") from exc
        events.announce(video.pk, *appended_events)
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
