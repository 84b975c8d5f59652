"""What a batch of fast-path posts needs from the database before it writes,
in one statement: the users of its tokens (active ones), whether each has an
active ban in the video, and the video.

Three ORM queries (DRF's token authentication, the video lookup, the ban
check) were a third of a batch's time, and round trips are what a batch
waits on.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.authtoken.models import Token

from accounts.authentication import could_be_token
from comments import services
from comments.models import Ban, Comment
from videos.models import Video

_USER_FIELDS = ("is_superuser", "is_staff", "is_active")
_VIDEO_FIELDS = ("id", "state", "slow_mode_seconds", "comments_enabled", "started_at", "owner_id")  # owner: role badges


@functools.cache
def _lookup_statement(tokens: int) -> tuple[str, list[str], list[str]]:
    User = get_user_model()
    users, token_table, ban_table = User._meta, Token._meta.db_table, Ban._meta.db_table
    wanted = {users.pk.attname, User.USERNAME_FIELD, *_USER_FIELDS}
    # In the models' own field order, as Model.from_db() takes them.
    user_fields = [f for f in users.concrete_fields if f.attname in wanted]
    video_fields = [f for f in Video._meta.concrete_fields if f.attname in _VIDEO_FIELDS]
    token_user = Token._meta.get_field("user").column
    sql = (
        f"SELECT t.{Token._meta.pk.column}, "
        + ", ".join(f"u.{f.column}" for f in user_fields)
        + f", (SELECT b.id FROM {ban_table} b WHERE b.user_id = u.{users.pk.column}"
        f" AND {services.active_ban_condition('b')} LIMIT 1), "
        + ", ".join(f"v.{f.column}" for f in video_fields)
        + f" FROM {token_table} t JOIN {users.db_table} u ON t.{token_user} = u.{users.pk.column}"
        f" LEFT JOIN {Video._meta.db_table} v ON v.{Video._meta.pk.column} = %s"
        f" WHERE t.{Token._meta.pk.column} IN ({', '.join(['%s'] * tokens)})"
    )
    return sql, [f.attname for f in user_fields], [f.attname for f in video_fields]


def _aware(value) -> datetime | None:
    """A datetime column as the raw cursor answers it: SQLite's is naive UTC (or text)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


def look_up(video_id: int, tokens: list[str]) -> tuple[dict[str, Any], Video | None, list]:
    """(token -> active user, the video or None, users with an active ban)."""
    keys = sorted({token for token in tokens if could_be_token(token)})
    if not keys:
        return {}, None, []
    connection = connections[Comment.objects.db]
    sql, user_names, video_names = _lookup_statement(len(keys))
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [video_id, now, video_id, *keys])
        rows = cursor.fetchall()
    User = get_user_model()
    users: dict[str, Any] = {}
    banned = []
    video = None
    split = 1 + len(user_names)
    for row in rows:
        user = User.from_db(connection.alias, user_names, row[1:split])
        if not user.is_active:
            continue
        users[row[0]] = user
        if row[split] is not None:
            banned.append(user)
        if video is None and row[split + 1] is not None:
            video = Video.from_db(connection.alias, video_names, row[split + 1 :])
            video.comments_enabled = bool(video.comments_enabled)  # SQLite answers 0 / 1
            video.started_at = _aware(video.started_at)  # the base of the comments' offset_ms
    return users, video, banned
