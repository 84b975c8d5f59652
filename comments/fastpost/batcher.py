"""Comments posted to this process, written a batch at a time (a group commit).

The posting endpoint in front of Django (comments/fastpost/endpoint.py) hands
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
import logging
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from comments.accept import Answer, Post, accept_looked_up, refused, server_error
from comments.fastpost.lookup import look_up
from livecomment.lib import metrics
from livecomment.lib.errors import Unavailable

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

Reply = Answer | NotAuthenticated


class _Queue:
    __slots__ = ("waiting", "writers")

    def __init__(self):
        self.waiting: list[tuple[PostRequest, asyncio.Future]] = []
        self.writers: set[asyncio.Task] = set()


_queues: dict[int, _Queue] = {}


async def submit(video_id: int, request: PostRequest) -> Reply:
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
            except Exception:
                log.exception("group commit of %d comments to video %s failed", len(batch), video_id)
                answers = [server_error("fastpath") for _ in batch]
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


def write_batch(video_id: int, requests: list[PostRequest]) -> list[Reply]:
    """The answers to a batch of POSTs to one video (sync: a pool thread)."""
    close_old_connections()
    try:
        return _write_batch(video_id, requests)
    finally:
        close_old_connections()


def _write_batch(video_id: int, requests: list[PostRequest]) -> list[Reply]:
    try:
        users, video, banned = look_up(video_id, [request.token for request in requests])
    except DatabaseError as exc:
        log.warning("database unavailable on the batch's lookup: %s", exc)
        return [refused(Unavailable("database"), "fastpath") for _ in requests]

    # An unknown token goes on to Django; the rest, in order, to accept_looked_up().
    replies: list[Reply] = [NOT_AUTHENTICATED] * len(requests)
    known: list[tuple[int, Post]] = []
    for index, request in enumerate(requests):
        user = users.get(request.token)
        if user is not None:
            known.append((index, Post(user, request.text, request.idempotency_key, request.meta)))
    if known:
        answers = accept_looked_up(video if video is not None else video_id, [post for _, post in known], banned)
        for (index, _), answer in zip(known, answers, strict=True):
            replies[index] = answer
    return replies
