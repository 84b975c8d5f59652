"""Comments posted to this process, written a batch at a time (a group commit).

The posting endpoint in front of Django (comments/post_endpoint.py) hands
each request here. Per video, one batch is being written at a time; requests
that arrive meanwhile wait and become the next batch, so under load a batch
holds what arrived during the previous one and an idle video writes each
comment at once (no timer, no added delay). A batch costs the stores the
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

from comments import services
from comments.api import get_video
from livecomment import metrics
from livecomment.authentication import users_for_tokens
from livecomment.errors import ServiceError, Unavailable
from livecomment.throttling import check_api_post_throttles

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
    __slots__ = ("waiting", "task")

    def __init__(self):
        self.waiting: list[tuple[PostRequest, asyncio.Future]] = []
        self.task: asyncio.Task | None = None


_queues: dict[int, _Queue] = {}


async def submit(video_id: int, request: PostRequest) -> Answer:
    """Post one comment through this process's group commit; its answer."""
    future = asyncio.get_running_loop().create_future()
    queue = _queues.get(video_id)
    if queue is None:
        queue = _queues[video_id] = _Queue()
    queue.waiting.append((request, future))
    if queue.task is None:
        queue.task = asyncio.create_task(_drain(video_id, queue))
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
        queue.task = None
        if not queue.waiting and _queues.get(video_id) is queue:
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
        users = users_for_tokens([request.token for request in requests])
    except DatabaseError as exc:
        log.warning("database unavailable on token lookup: %s", exc)
        return [Unavailable("database") for _ in requests]

    # Then in the order of DRF's view: throttles, the video, the service.
    drafts: list[tuple[int, services.Draft]] = []
    for index, request in enumerate(requests):
        user = users.get(request.token)
        if user is None:
            answers[index] = NOT_AUTHENTICATED
            continue
        try:
            check_api_post_throttles(user, request.meta)
        except ServiceError as exc:
            answers[index] = exc
            continue
        drafts.append((index, services.Draft(user, request.text, request.idempotency_key)))

    if drafts:
        try:
            video = get_video(video_id)
        except ServiceError as exc:
            outcomes: list[services.Outcome] = [exc for _ in drafts]
        else:
            outcomes = services.post_comments(video, [draft for _, draft in drafts])
        for (index, _), outcome in zip(drafts, outcomes, strict=True):
            answers[index] = outcome
    done = [answer for answer in answers if answer is not None]
    assert len(done) == len(requests), "a request without an answer"
    return done
