"""What the SSE and WebSocket consumers share: opening a live connection.

1. authorise and look up the video (404 / 401 before anything is streamed);
2. register the connection with the hub (joins the video's group if first);
3. read the backlog (resume point or recent history) -- after 2, so nothing
   falls between backlog and live (invariant 4);
4. `catch_up` writes it page by page (REALTIME_CATCHUP_PAGE events at a
   time, each written and taken by the client before the next is read)
   until the pages reach what the hub has delivered, then
   `connection.start()` goes live and drops live events the pages held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

from comments import cursors, hotstore
from dispatcher import backlog, hooks
from dispatcher.auth import BadToken, authenticate_scope, headers_of, query_of, run_sync
from livecomment.lib.errors import ServiceError, Unavailable
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS
from videos.models import Video

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

    from comments.hotstore import StreamEvent
    from dispatcher.connections import Connection
    from dispatcher.subscription import VideoSubscription
    from livecomment.lib.limits import StreamSlot

log = logging.getLogger(__name__)


@dataclass
class StreamRequest:
    video: Video
    user: AbstractBaseUser | AnonymousUser
    moderator: bool
    last_event_id: str | None
    # The database is down: serve what Redis holds, to anonymous viewers.
    degraded: bool = False


def _resume_point(scope) -> str | None:
    value = headers_of(scope).get("last-event-id") or query_of(scope).get("last_event_id")
    if not value:
        return None
    if not cursors.is_valid(value):
        raise ServiceError("invalid_last_event_id", "Last-Event-ID must be a stream position like 1764000000000-0.")
    return cursors.canonical(value)


def _prepare(scope, video_id: int) -> StreamRequest:
    from django.contrib.auth.models import AnonymousUser
    from django.db import DatabaseError

    last_event_id = _resume_point(scope)
    try:
        try:
            user = authenticate_scope(scope)
        except BadToken:
            raise ServiceError("authentication_failed", "Invalid token.", 401) from None
        video = Video.objects.filter(pk=video_id).first()
        if video is None:
            raise ServiceError("not_found", f"No video {video_id}.", 404)
        return StreamRequest(video, user, hooks.may_see_held(user, video), last_event_id)
    except DatabaseError:
        # Streaming what is already in Redis keeps working without the
        # database: a video with a stream exists; its viewers read as anonymous.
        if not hotstore.stream_exists(video_id):
            raise
        log.warning("database unavailable: streaming video %s from Redis only", video_id)
        return StreamRequest(Video(pk=video_id, state=Video.State.LIVE), AnonymousUser(), False, last_event_id, True)


async def prepare(scope, video_id: int) -> StreamRequest:
    from django.db import DatabaseError

    try:
        return await run_sync(_prepare, scope, video_id)
    except DatabaseError as exc:
        raise Unavailable("database") from exc


def _read_backlog(request: StreamRequest) -> backlog.Backlog:
    use_database = not request.degraded
    if request.last_event_id is not None:
        page = backlog.resume_page(
            request.video.pk, request.last_event_id, settings.REALTIME_CATCHUP_PAGE, request.moderator, use_database
        )
    else:
        page = backlog.latest(request.video.pk, settings.REALTIME_BACKLOG, request.moderator, use_database)
    if use_database:  # the pin is read after the page: a pin made between the two comes again live, same cursor
        page.pin = backlog.current_pin(request.video.pk)
    return page


def _read_page(request: StreamRequest, after: str, since: str) -> backlog.Backlog:
    return backlog.resume_page(
        request.video.pk, after, settings.REALTIME_CATCHUP_PAGE, request.moderator, not request.degraded, since
    )


async def _run_read(func, *args) -> backlog.Backlog:
    from django.db import DatabaseError

    try:
        return await run_sync(func, *args)
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable("redis") from exc
    except DatabaseError as exc:
        raise Unavailable("database") from exc


async def read_backlog(request: StreamRequest) -> backlog.Backlog:
    """The first page: the newest comments, or the first page after the resume point."""
    return await _run_read(_read_backlog, request)


async def catch_up(
    request: StreamRequest,
    connection: Connection,
    sub: VideoSubscription,
    page: backlog.Backlog,
    target: int,
    write: Callable[[list[StreamEvent]], Awaitable[None]],
) -> int:
    """Write `page` and the pages after it, then go live; returns how many events were written.

    `target` is the hub's last delivered position for the video when `page`
    was read. While catching up the connection keeps no live frames: pages
    are read (in a worker thread) and written (`write` returns once the
    client took them) until they reach what the hub has delivered, and the
    connection goes live with no await between that check and `start()`, so
    every event is in a page or arrives live, once (invariant 4) -- however
    far behind the client is, and however busy the video.
    """
    since = request.last_event_id or page.last_id
    written = 0
    if page.pin is not None:  # the current pin first (no id: the resume point stays), then the backlog
        await write([page.pin])
    while True:
        if page.events:
            await write(page.events)
            connection.last_id = page.events[-1].id
            written += len(page.events)
        if connection.closed or connection.gone():
            if not connection.close_reason:  # ended by a drain (SIGTERM): its last message
                await connection.send_final()
            return written
        position = cursors.to_position(page.last_id)
        # Caught up; or the stream ended short of what the hub had delivered
        # before this page was read (the stream lost it): nothing more to read.
        if position >= sub.last_position or (not page.more and position < target):
            connection.start(position)
            if sub.viewers_frame is not None:
                connection.deliver(sub.viewers_frame)
            return written
        target = sub.last_position
        page = await _run_read(_read_page, request, page.last_id, since)


def closed_by_hub(connection, reason: str) -> None:
    """A connection the hub gave up on (overflow, failed send): count it and let it go."""
    from dispatcher.hub import get_hub

    hub = get_hub()
    if reason == "overflow":
        hub.stats["overflows"] += 1
    hub.unsubscribe(connection)


class ReleasesStreamSlot:
    """Consumer mixin: however the stream ends, give its per-IP slot back."""

    stream_slot: StreamSlot | None = None

    async def __call__(self, scope, receive, send):
        try:
            # A mixin: the consumer class after it in the MRO has __call__.
            await super().__call__(scope, receive, send)  # type: ignore[misc]
        finally:
            if self.stream_slot is not None:
                self.stream_slot.release()


async def open_stream(scope, video_id: int, connect: Callable[[StreamRequest], Connection]):
    """The open both endpoints share: authorise, refuse while shutting down, register with the hub.

    Returns (request, connection, subscription); the caller then reads the
    backlog and calls `catch_up`.
    """
    from dispatcher.hub import get_hub

    request = await prepare(scope, video_id)
    hub = get_hub()
    if hub.shutting_down:
        raise Unavailable("gateway")
    connection = connect(request)
    sub = await hub.subscribe(video_id, connection)
    return request, connection, sub


def log_open(transport: str, video_id: int, request_id: str, resumed: bool, backlog_len: int) -> None:
    log.info(
        "stream open",
        extra={
            "event": "stream.open",
            "transport": transport,
            "video": video_id,
            "request_id": request_id,
            "resume": resumed,
            "backlog": backlog_len,
        },
    )


def log_refused(transport: str, scope, request_id: str, error: ServiceError) -> None:
    log.info(
        "stream refused",
        extra={
            "event": "stream.refused",
            "transport": transport,
            "status": error.status,
            "code": error.code,
            "path": scope.get("path", ""),
            "request_id": request_id,
        },
    )


def log_close(transport: str, connection: Connection, request_id: str, opened_at: float, **more) -> None:
    log.info(
        "stream close",
        extra={
            "event": "stream.close",
            "transport": transport,
            "video": connection.video_id,
            "request_id": request_id,
            "reason": connection.close_reason or "client",
            **more,
            "duration_ms": round((time.monotonic() - opened_at) * 1000),
            "last_event_id": connection.last_id,
        },
    )
