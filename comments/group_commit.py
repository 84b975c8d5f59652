"""Comments posted to this process, written a batch at a time (a group commit).

The posting endpoint in front of Django (comments/post_endpoint.py) hands
each request here. Per video, POST_BATCHES_IN_FLIGHT batches (one by
default: a second one overlapped a batch's waits but cost a fifth more CPU
per comment for no more comments a second, docs/BENCHMARKS.md) are being
written at a time; requests that arrive meanwhile wait and become the next
batch, so under load a batch holds what arrived
during the previous one and an idle video writes each comment at once (no
timer, no added delay). Comments are ordered as their batch's stream append
orders them, as concurrent requests always were. A batch costs the stores the
same few round trips whatever its size (`services.post_comments`), which is
what lets one process accept over a thousand comments a second.

Each request still gets its own answer: the checks (token, throttles, text,
ban, slow mode, duplicates) run per request, in arrival order, and one
refused request never fails the others. A database or Redis failure fails
the batch it hit (503 each), as it would have failed each request alone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone
from rest_framework.authtoken.models import Token

from comments import services
from comments.models import Ban, Comment
from livecomment import metrics
from livecomment.authentication import could_be_token
from livecomment.errors import Unavailable
from livecomment.throttling import api_post_throttles
from videos.lookups import video_not_found
from videos.models import Video

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PostRequest:
    """A comment POST as the endpoint parsed it; nothing checked but its shape."""

    token: str
    text: object  # the body's "text", any JSON value
    idempotency_key: str | None
    meta: dict  # REMOTE_ADDR / HTTP_X_FORWARDED_FOR, for the per-IP throttle


class NotAuthenticated:
    """The token names no active user: Django's authentication answers (its
    own 401 and words), the request having cost nothing here."""


NOT_AUTHENTICATED = NotAuthenticated()

Answer = services.Outcome | NotAuthenticated


class _Queue:
    __slots__ = ("waiting", "writers")

    def __init__(self):
        self.waiting: list[tuple[PostRequest, asyncio.Future]] = []
        self.writers: set[asyncio.Task] = set()


_queues: dict[int, _Queue] = {}


async def submit(video_id: int, request: PostRequest) -> Answer:
    """Post one comment through this process's group commit; its answer."""
    future = asyncio.get_running_loop().create_future()
    queue = _queues.get(video_id)
    if queue is None:
        queue = _queues[video_id] = _Queue()
    queue.waiting.append((request, future))
    if len(queue.writers) < settings.POST_BATCHES_IN_FLIGHT:
        writer = asyncio.create_task(_drain(video_id, queue))
        queue.writers.add(writer)
    return await future


async def _drain(video_id: int, queue: _Queue) -> None:
    batch: list[tuple[PostRequest, asyncio.Future]] = []
    try:
        while queue.waiting:
            size = settings.POST_BATCH_MAX
            batch, queue.waiting = queue.waiting[:size], queue.waiting[size:]
            metrics.POST_BATCH_SIZE.observe(len(batch))
            try:
                answers = await _write(video_id, [request for request, _ in batch])
            except Exception as exc:
                log.exception("group commit of %d comments to video %s failed", len(batch), video_id)
                answers = [exc] * len(batch)
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
            batch = []
    finally:
        for _, future in batch:  # cancelled mid-batch (the server shutting down)
            if not future.done():
                future.cancel()
        queue.writers.discard(asyncio.current_task())
        if not queue.writers and not queue.waiting and _queues.get(video_id) is queue:
            del _queues[video_id]


async def _write(video_id: int, requests: list[PostRequest]) -> list:
    # In a pool thread, like the Django view (comments/longpoll.py); in
    # in-process tests the one shared thread, which holds the test's transaction.
    run = sync_to_async(write_batch, thread_sensitive=not settings.API_THREAD_POOL)
    return await run(video_id, requests)


def write_batch(video_id: int, requests: list[PostRequest]) -> list[Answer]:
    """The answers to a batch of POSTs to one video (sync: a pool thread)."""
    close_old_connections()
    try:
        return _write_batch(video_id, requests)
    finally:
        close_old_connections()


def _write_batch(video_id: int, requests: list[PostRequest]) -> list[Answer]:
    answers: list[Answer | None] = [None] * len(requests)
    try:
        users, video, banned = _look_up(video_id, [request.token for request in requests])
    except DatabaseError as exc:
        log.warning("database unavailable on the batch's lookup: %s", exc)
        return [Unavailable("database") for _ in requests]

    # Then in the order of DRF's view: throttles, the video, the service.
    known: list[tuple[int, object]] = []
    for index, request in enumerate(requests):
        user = users.get(request.token)
        if user is None:
            answers[index] = NOT_AUTHENTICATED
        else:
            known.append((index, user))
    throttled = api_post_throttles([(user, requests[index].meta) for index, user in known])
    drafts: list[tuple[int, services.Draft]] = []
    for (index, user), refusal in zip(known, throttled, strict=True):
        if refusal is not None:
            answers[index] = refusal
        else:
            request = requests[index]
            drafts.append((index, services.Draft(user, request.text, request.idempotency_key)))

    if drafts:
        if video is None:
            outcomes: list[services.Outcome] = [video_not_found(video_id) for _ in drafts]
        else:
            try:
                # The lookup only said who has a ban; which one (and its end) for those few.
                bans = services.active_bans(video, banned) if banned else {}
            except DatabaseError:
                outcomes = [Unavailable("database") for _ in drafts]
            else:
                outcomes = services.post_comments(video, [draft for _, draft in drafts], bans=bans)
        for (index, _), outcome in zip(drafts, outcomes, strict=True):
            answers[index] = outcome
    done = [answer for answer in answers if answer is not None]
    assert len(done) == len(requests), "a request without an answer"
    return done


# What a batch needs from the database before it writes, in one statement:
# the users of its tokens (active ones), whether each has an active ban in
# this video, and the video. Three ORM queries (DRF's token authentication,
# get_video, the ban check) were a third of a batch's time, and round trips
# are what a batch waits on.
_USER_FIELDS = ("is_superuser", "is_staff", "is_active")
_VIDEO_FIELDS = ("id", "state", "slow_mode_seconds", "comments_enabled")


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


def _look_up(video_id: int, tokens: list[str]) -> tuple[dict[str, Any], Video | None, list]:
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
    return users, video, banned
