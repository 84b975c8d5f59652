"""The write path. Every change to a comment goes through a function here.

Views, consumers, admin actions and management commands call these; nothing
else saves a comment or broadcasts it. Each function validates, writes the
database (the system of record) and the video's Redis stream (the hot store)
so that a failure of either leaves nothing half-written, and only once the
database has the rows hands the events to `dispatcher.publish`.

`rules` holds the checks, `posting` posts comments, `store` writes them to
both stores, `moderation` and `video_settings` hold moderators' changes;
`remote` holds the entry points region ingest alone calls (not re-exported).
"""

from comments.services.moderation import (
    MODERATE_ACTIONS,
    REMOVE_RECENT_SECONDS,
    ban_user,
    delete_blocked_term,
    delete_own_comment,
    lift_ban,
    moderate_comment,
    remove_comment,
    report_comment,
    resolve_report,
    save_blocked_term,
)
from comments.services.posting import Draft, Outcome, PostResult, post_comment, post_comments
from comments.services.rules import (
    IDEMPOTENCY_KEY_MAX,
    REASON_MAX,
    active_ban,
    active_ban_condition,
    active_bans,
    can_moderate,
    clean_idempotency_key,
    clean_text,
    require_moderator,
    video_moderator_ids,
)
from comments.services.video_settings import STATE_TRANSITIONS, UNSET, VIDEO_FIELDS, update_video

__all__ = [
    "IDEMPOTENCY_KEY_MAX",
    "MODERATE_ACTIONS",
    "REASON_MAX",
    "REMOVE_RECENT_SECONDS",
    "STATE_TRANSITIONS",
    "UNSET",
    "VIDEO_FIELDS",
    "Draft",
    "Outcome",
    "PostResult",
    "active_ban",
    "active_ban_condition",
    "active_bans",
    "ban_user",
    "can_moderate",
    "clean_idempotency_key",
    "clean_text",
    "delete_blocked_term",
    "delete_own_comment",
    "lift_ban",
    "moderate_comment",
    "post_comment",
    "post_comments",
    "remove_comment",
    "report_comment",
    "require_moderator",
    "resolve_report",
    "save_blocked_term",
    "update_video",
    "video_moderator_ids",
]
