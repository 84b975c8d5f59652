"""The checks every write makes: text and Idempotency-Key, an open video, who
moderates a video (cached), active bans (raw SQL, asked on every post) and
blocked terms (cached)."""

from __future__ import annotations

import logging
import re
import time
import unicodedata

from django.conf import settings
from django.db import connections
from django.db.models import Q
from django.db.models.signals import m2m_changed
from django.utils import timezone

from comments import events
from comments.models import Ban, BlockedTerm
from livecomment.lib.errors import ServiceError
from videos.models import Video

log = logging.getLogger(__name__)

IDEMPOTENCY_KEY_MAX = 255


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

_hosts_cache: dict[int, tuple[float, frozenset]] = {}


def video_host_ids(video: Video) -> frozenset:
    """Ids of the video's designated hosts, cached like its moderators (the
    owner is on the row itself)."""
    now = time.monotonic()
    cached = _hosts_cache.get(video.pk)
    if cached is not None and now - cached[0] < MODERATORS_CACHE_SECONDS:
        return cached[1]
    ids = frozenset(video.hosts.values_list("pk", flat=True))
    _hosts_cache[video.pk] = (now, ids)
    return ids


def _forget_hosts(sender, instance, action, pk_set=None, reverse=False, **kwargs):
    if action.startswith("post_"):
        if reverse:
            _hosts_cache.clear()
        else:
            _hosts_cache.pop(instance.pk, None)


m2m_changed.connect(_forget_hosts, sender=Video.hosts.through, dispatch_uid="forget-hosts")

ROLES = ("host", "moderator", "staff")  # comments.events.Role, in this order


def author_roles(user, video: Video) -> str:
    """The roles a comment by `user` in `video` carries, as stored on the row
    ("host moderator staff", space-separated; "" for a plain viewer): host --
    the video's owner or a designated host; moderator -- one of the video's
    moderators; staff -- site staff (who may moderate every video). From the
    user and video the write path holds and the caches above: no query of its
    own but the cached ones."""
    roles = []
    if user.pk == video.owner_id or user.pk in video_host_ids(video):
        roles.append("host")
    if user.pk in video_moderator_ids(video):
        roles.append("moderator")
    if user.is_staff:
        roles.append("staff")
    return " ".join(roles)


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


# A moderator's or reporter's reason: the API refuses longer ones (400), the
# services cut what other callers give, and ingest cuts what another region sends.
REASON_MAX = 500


def _reason(value) -> str:
    return value[:REASON_MAX] if isinstance(value, str) else ""


# -- who may do what ---------------------------------------------------------------


def require_moderator(user, video: Video | None) -> None:
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


def forget_terms() -> None:
    """A changed term applies at once in this process (others within TERMS_CACHE_SECONDS)."""
    _terms_cache.clear()
