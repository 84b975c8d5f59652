"""The gateway hub: this process's viewers, and the one receiver that feeds them.

See docs/realtime.md for the whole picture. In short:

* Endpoint store. The process owns one channel-layer channel. When its first
  local connection for video X arrives it joins group `video.X`; when its last
  one leaves it discards it. Group membership in the channel layer (Redis)
  is the endpoint store: `dispatcher.publish` sends one message per member,
  i.e. per gateway process, never per viewer. Memberships are re-added every
  `group_expiry / 3` seconds, so a live gateway keeps its groups forever and a
  crashed one's expire.
* Hub. `{video_id: VideoSubscription}`, each holding that video's local
  connections. One incoming message becomes one `Frame`, encoded once, and
  is handed to every connection (dispatcher/connections.py writes it).
* Gap repair. Every event carries its stream position and the previous one.
  When `prev` is not the last position this process delivered for the video,
  a message was lost (the channel layer drops past capacity, or Redis
  restarted): the missing range is read from the stream and delivered first,
  in order. The part the stream no longer holds (trimmed, or Redis came back
  empty) is read from the database first, in pages, in a worker thread. A
  periodic check of each stream's tip catches a lost last event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections import Counter, deque
from typing import cast

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Max

from comments import hotstore
from comments.cursors import ZERO, from_position, to_position
from comments.models import Comment
from dispatcher import backlog
from dispatcher.auth import run_sync
from dispatcher.connections import Connection
from dispatcher.frames import PING, Burst, Frame
from dispatcher.publisher import MESSAGE_TYPE, group_name
from livecomment import redis_client

log = logging.getLogger(__name__)

_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}

# Connection writes per turn of the event loop (Hub._write_some): a few
# milliseconds, then requests waiting for the loop get their turn.
WRITES_PER_TURN = 512

# The tip check leaves an undelivered event at the stream's tip alone while
# it is younger than this (its message is likely queued, not lost).
TIP_GRACE_SECONDS = 1.0

# Rows per database read when a gap is repaired from the database.
REPAIR_PAGE = 500


def get_hub() -> Hub:
    """The hub of this process (one per event loop, i.e. per server process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for old_loop in [lp for lp in _hubs if lp.is_closed()]:
            del _hubs[old_loop]
        hub = _hubs[loop] = Hub()
    return hub


def current_hub() -> Hub | None:
    try:
        return _hubs.get(asyncio.get_running_loop())
    except RuntimeError:
        return None


class VideoSubscription:
    __slots__ = (
        "video_id",
        "connections",
        "last_id",
        "last_position",
        "lock",
        "joined",
        "viewers_sent",
        "viewers_frame",
        "outbox",
        "active",
        "burst",
        "burst_connections",
        "burst_next",
        "tip_ahead",
    )

    def __init__(self, video_id: int):
        self.video_id = video_id
        self.connections: set[Connection] = set()
        self.last_id = ZERO  # last stream position delivered to this process's connections
        self.last_position = 0
        self.lock = asyncio.Lock()  # delivery of stream events is one at a time per video
        self.joined: asyncio.Future = asyncio.get_running_loop().create_future()
        self.viewers_sent = -1
        self.viewers_frame: Frame | None = None  # the last total sent, for newcomers
        # Frames handed out, not yet written (Hub._fan_out), and the burst being written.
        self.outbox: list[Frame] = []
        self.active = False  # in Hub._active: has an outbox or a burst
        self.burst: Frame | Burst | None = None
        self.burst_connections: tuple[Connection, ...] | None = None
        self.burst_next = 0
        self.tip_ahead = 0  # the stream's tip at the last check, when it was ahead of last_position

    def advance(self, event_id: str) -> None:
        self.last_id = event_id
        self.last_position = to_position(event_id)


def viewers_key(video_id: int) -> str:
    return f"viewers:{{{video_id}}}"


class Hub:
    def __init__(self):
        self.layer = get_channel_layer()
        self.channel_name: str | None = None
        self.videos: dict[int, VideoSubscription] = {}
        self.tasks: list[asyncio.Task] = []
        self.started = False
        self._start_lock = asyncio.Lock()
        self.draining = False
        self.redis_up = True
        self.stats: Counter = Counter()
        self.received_by_video: Counter = Counter()
        self._active: deque[VideoSubscription] = deque()  # subscriptions with frames to write
        self._write_handle: asyncio.Handle | None = None

    # -- lifecycle -------------------------------------------------------------

    async def ensure_started(self) -> None:
        if self.started:
            return
        async with self._start_lock:
            if self.started:  # another task started it while this one waited for the lock
                return  # type: ignore[unreachable]  # mypy keeps the narrowing of `started` across the await
            self.channel_name = await self.layer.new_channel(prefix="gateway")
            loop = asyncio.get_running_loop()
            self.tasks = [
                loop.create_task(self._receive_loop(), name="hub-receive"),
                loop.create_task(self._every(settings.REALTIME_HEARTBEAT_SECONDS, self._heartbeat), name="hub-ping"),
                loop.create_task(self._every(self.refresh_interval(), self._refresh_groups), name="hub-refresh"),
                loop.create_task(self._every(settings.REALTIME_TIP_CHECK_SECONDS, self._check_tips), name="hub-tips"),
                loop.create_task(
                    self._every(settings.REALTIME_VIEWERS_INTERVAL, self._report_viewers), name="hub-viewers"
                ),
                loop.create_task(
                    self._every(settings.REALTIME_REDIS_CHECK_SECONDS, self._watch_redis), name="hub-redis"
                ),
            ]
            self.started = True
            self._install_drain_on_sigterm(loop)

    def _install_drain_on_sigterm(self, loop) -> None:
        """On SIGTERM, drain first (every stream gets a final `retry:` and a
        clean end, so clients resume elsewhere at once), then let the
        server's own SIGTERM handling stop the process."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum, frame):
            if self.draining:
                return
            self.draining = True

            async def drain_then_stop():
                try:
                    await self.drain()
                finally:
                    if callable(previous):
                        previous(signum, frame)
                    elif previous == signal.SIG_DFL:
                        signal.signal(signal.SIGTERM, signal.SIG_DFL)
                        os.kill(os.getpid(), signal.SIGTERM)

            loop.call_soon_threadsafe(lambda: loop.create_task(drain_then_stop()))

        signal.signal(signal.SIGTERM, on_sigterm)

    async def drain(self, timeout: float | None = None) -> int:
        """End every stream of this process cleanly; returns how many."""
        self.draining = True
        timeout = settings.REALTIME_DRAIN_SECONDS if timeout is None else timeout
        self._flush()  # what was handed out this turn goes before the end
        connections = [c for sub in self.videos.values() for c in sub.connections]
        for connection in connections:
            message = connection.final_message(settings.REALTIME_DRAIN_RETRY_MS)
            if message is not None:
                connection.finish(message)
            else:
                connection.stop()
        self.stats["drained"] += len(connections)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def flushing(c) -> bool:
            return c.pending is not None or (c.probe is not None and c.probe.buffered() > 0)

        while any(flushing(c) for c in connections) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if any(c.kind == "ws" for c in connections):
            # Give WebSocket close handshakes a moment to complete.
            await asyncio.sleep(max(0.0, min(0.3, deadline - loop.time())))
        for video_id in list(self.videos):
            try:
                await self.layer.group_discard(group_name(video_id), self.channel_name)
            except Exception:  # noqa: BLE001 - the membership dies with the process anyway
                pass
        log.info("drained %d streams", len(connections))
        return len(connections)

    def refresh_interval(self) -> float:
        expiry = getattr(self.layer, "group_expiry", 86400)
        return max(1.0, expiry / 3)

    async def stop(self) -> None:
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None
        self._active.clear()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self.tasks = []
        for video_id in list(self.videos):
            try:
                await self.layer.group_discard(group_name(video_id), self.channel_name)
            except Exception:  # noqa: BLE001
                pass
        self.videos.clear()
        self.started = False

    # -- the endpoint store ----------------------------------------------------

    async def subscribe(self, video_id: int, connection: Connection) -> VideoSubscription:
        """Register a connection; join the video's group if it is the first.

        Returns once this process is in the group and knows the stream's tip,
        so a backlog read after it cannot miss an event (invariant 4).
        """
        await self.ensure_started()
        sub = self.videos.get(video_id)
        if sub is None:
            sub = self.videos[video_id] = VideoSubscription(video_id)
            sub.connections.add(connection)
            try:
                await self.layer.group_add(group_name(video_id), self.channel_name)
                tip = await self._tip(video_id)
                if tip == ZERO:
                    # An empty stream (Redis came back without its data): the
                    # history is in the database, and a later repair must start
                    # after it, not from the video's first comment.
                    try:
                        tip = await run_sync(_database_tip, video_id)
                    except DatabaseError:
                        pass  # streaming from Redis alone: nothing to repair from either
                sub.advance(tip)
            except BaseException as exc:
                if self.videos.get(video_id) is sub:
                    del self.videos[video_id]
                sub.joined.set_exception(exc)
                sub.joined.exception()  # mark retrieved
                raise
            sub.joined.set_result(True)
            self.stats["groups_joined"] += 1
        else:
            sub.connections.add(connection)
            await asyncio.shield(sub.joined)
        self.stats["connections_opened"] += 1
        return sub

    def unsubscribe(self, connection: Connection) -> None:
        sub = self.videos.get(connection.video_id)
        if sub is None or connection not in sub.connections:
            return
        sub.connections.discard(connection)
        self.stats["connections_closed"] += 1
        if not sub.connections and sub.joined.done():
            del self.videos[connection.video_id]
            asyncio.get_running_loop().create_task(self._leave(connection.video_id))

    async def _leave(self, video_id: int) -> None:
        if video_id in self.videos:  # somebody came back meanwhile
            return
        try:
            await self.layer.group_discard(group_name(video_id), self.channel_name)
            # redis-py types the asyncio client's hdel as `Awaitable[int] | int`; the channel is set once started.
            await redis_client.async_for_video(video_id).hdel(viewers_key(video_id), self.channel_name)  # type: ignore[misc, arg-type]
            self.stats["groups_left"] += 1
        except Exception as exc:  # noqa: BLE001 - the membership expires anyway
            log.warning("leaving group of video %s failed: %s", video_id, exc)

    async def _refresh_groups(self) -> None:
        for video_id in list(self.videos):
            await self.layer.group_add(group_name(video_id), self.channel_name)

    # -- receiving -------------------------------------------------------------

    async def _receive_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                message = await self.layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: retry, then resync
                self.stats["receive_errors"] += 1
                log.warning("channel layer receive failed (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                try:
                    await self._resync()
                    backoff = 0.1
                except Exception as exc2:  # noqa: BLE001
                    log.info("resync failed: %s", exc2)
                continue
            if message.get("type") != MESSAGE_TYPE:
                continue
            try:
                await self.handle(message)
            except Exception:
                log.exception("handling %s failed", message.get("e"))

    async def handle(self, message: dict) -> None:
        video_id = message["v"]
        self.stats["messages_received"] += 1
        self.received_by_video[video_id] += 1
        sub = self.videos.get(video_id)
        if sub is None:
            self.stats["messages_unexpected"] += 1
            return
        event_id = message.get("id") or ""
        frame = Frame(message["e"], event_id, message["d"], message.get("a") or "")
        if not event_id:
            self._fan_out(sub, frame)
            return
        async with sub.lock:
            if not sub.joined.done():
                await asyncio.shield(sub.joined)
            if frame.position <= sub.last_position:
                self.stats["messages_stale"] += 1  # already delivered through a repair
                return
            if message.get("prev") != sub.last_id:
                await self._repair(sub, upto=event_id)
                return
            sub.advance(event_id)
            self._fan_out(sub, frame)

    async def _repair(self, sub: VideoSubscription, upto: str = "+") -> int:
        """Deliver what was missed after what was last delivered, in order. Caller holds sub.lock.

        From the stream, when it still holds what follows the last delivered
        position; else (it was trimmed, or Redis came back empty) the part it
        no longer holds comes from the database first."""
        client = redis_client.async_for_video(sub.video_id)
        key = hotstore.stream_key(sub.video_id)
        async with client.pipeline(transaction=False) as pipe:
            pipe.xrange(key, "-", "+", count=1)
            pipe.xrange(key, f"({sub.last_id}", upto)
            first, entries = await pipe.execute()
        first_id = first[0][0] if first else None
        repaired = 0
        if first_id is None or to_position(first_id) > sub.last_position:
            repaired = await self._repair_from_database(sub, first_id)
            if first_id is None:  # it may have entries by now
                entries = await client.xrange(key, f"({sub.last_id}", upto)
            else:
                entries = [entry for entry in entries if to_position(entry[0]) > sub.last_position]
        if entries:
            self.stats["gap_repairs"] += 1
            self.stats["repaired_events"] += len(entries)
        for entry_id, fields in entries:
            event = hotstore.parse_entry(entry_id, fields)
            sub.advance(event.id)
            self._fan_out(sub, Frame.from_stream(event))
        return repaired + len(entries)

    async def _repair_from_database(self, sub: VideoSubscription, first_id: str | None) -> int:
        """Deliver the database's events between the last delivered position
        and the stream's first entry, a page at a time. Caller holds sub.lock.

        Built for moderators: `comment.held` frames carry their audience, and
        each connection decides (removed comments are not in it at all). With
        no stream at all the upper bound is the first entry appended since:
        the stream's entries precede their rows' commits, so a committed row
        at or after it is the stream's to deliver."""
        origin = after = sub.last_id
        repaired = 0
        self.stats["database_repairs"] += 1
        while True:
            page = await run_sync(backlog.database_page, sub.video_id, after, first_id, REPAIR_PAGE, True, origin)
            events, next_after = page.events, (page.last_id if page.more else None)
            if first_id is None:
                first_id = await self._first_id(sub.video_id)
                if first_id is not None:
                    bound = to_position(first_id)
                    events = [e for e in events if to_position(e.id) < bound]
                    if next_after is not None and to_position(next_after) >= bound:
                        next_after = None
            for event in events:
                sub.advance(event.id)
                self._fan_out(sub, Frame.from_stream(event))
            repaired += len(events)
            if next_after is None:
                break
            after = next_after
        self.stats["database_repaired_events"] += repaired
        return repaired

    def _fan_out(self, sub: VideoSubscription, frame: Frame) -> None:
        """Hand a frame to the video's connections, soon and in order.

        Frames are written by `_write_some`, a callback of the event loop,
        at most WRITES_PER_TURN connection writes per turn of the loop, so
        that a fan-out to many connections never holds the loop (and the
        requests it serves meanwhile: a POST, a new viewer) for more than a
        few milliseconds. A video's frames are written one burst at a time:
        every frame that arrived before its burst started goes out in it, so
        a hub that keeps up writes each event on its own, and one that fell
        behind writes everything that waited as one `Burst` (one write per
        SSE connection instead of one per event) and catches up."""
        sub.outbox.append(frame)
        if not sub.active:
            sub.active = True
            self._active.append(sub)
            if self._write_handle is None:
                self._write_handle = asyncio.get_running_loop().call_soon(self._write_some)

    def _write_some(self, budget: int = 0) -> None:
        """Write up to `budget` (WRITES_PER_TURN) connections' worth of the
        active videos' frames, round robin by burst; again next turn if
        anything is left."""
        self._write_handle = None
        budget = budget or WRITES_PER_TURN
        active = self._active
        while active and budget > 0:
            sub = active[0]
            if sub.burst is None:
                if not sub.outbox:
                    sub.active = False
                    active.popleft()
                    continue
                self._start_burst(sub)
            budget -= self._write_burst(sub, budget)
            if sub.burst is None:  # done: on to the next video, this one's new frames after
                active.rotate(-1)
        if active:
            self._write_handle = asyncio.get_running_loop().call_soon(self._write_some)

    def _flush(self) -> None:
        """Write everything handed out so far, now (before draining)."""
        if self._write_handle is not None:
            self._write_handle.cancel()
        while self._active:
            self._write_some(budget=1 << 62)
        if self._write_handle is not None:
            self._write_handle.cancel()
            self._write_handle = None

    def _start_burst(self, sub: VideoSubscription) -> None:
        frames, sub.outbox = sub.outbox, []
        connections = tuple(sub.connections)  # a copy: a write may close and unsubscribe
        stats = self.stats
        stats["deliveries"] += len(connections) * (len(frames) - frames.count(PING))
        item: Frame | Burst
        if len(frames) == 1:
            item = frames[0]
        else:
            item = Burst(frames)
            stats["bursts"] += 1
            stats["burst_frames"] += len(frames)
        sub.burst = item
        sub.burst_connections = connections
        sub.burst_next = 0

    def _write_burst(self, sub: VideoSubscription, budget: int) -> int:
        """Write the current burst to up to `budget` more connections; returns how many."""
        item, connections, start = sub.burst, sub.burst_connections, sub.burst_next
        assert item is not None and connections is not None  # _start_burst set them
        end = min(len(connections), start + budget)
        first = item.first_position
        if item.audience:
            # Moderator-only events: each connection decides.
            for i in range(start, end):
                connections[i].deliver(item)
        else:
            # SSEConnection.deliver's fast path, inlined: a live SSE
            # connection under uvicorn that keeps up (and, for stream events,
            # has none of these yet) gets the pre-framed chunk written to its
            # transport; the rest take the general path (their own buffer,
            # Daphne, WebSocket, joining). Pings and viewer counts are not in
            # the stream (`first` is 0): nothing to skip or remember.
            chunk = item.sse_chunk
            last, last_id = item.position, item.id
            for i in range(start, end):
                connection = connections[i]
                if connection.fast and (not first or connection.skip_to < first):
                    # Only an SSEConnection with a uvicorn cycle is ever `fast`.
                    cycle = connection.cycle  # type: ignore[attr-defined]
                    if not cycle.flow.write_paused and not cycle.disconnected:
                        if first:
                            connection.skip_to = last
                            connection.last_id = last_id
                        try:
                            connection.transport.write(chunk)  # type: ignore[attr-defined]
                        except Exception as exc:  # noqa: BLE001 - the transport is closing: the client is gone
                            connection.close(f"send failed: {exc!r}")
                        continue
                connection.deliver(item)
        if end >= len(connections):
            sub.burst = sub.burst_connections = None
        else:
            sub.burst_next = end
        return max(1, end - start)

    async def _tip(self, video_id: int) -> str:
        client = redis_client.async_for_video(video_id)
        entries = await client.xrevrange(hotstore.stream_key(video_id), "+", "-", count=1)
        return entries[0][0] if entries else ZERO

    async def _first_id(self, video_id: int) -> str | None:
        client = redis_client.async_for_video(video_id)
        entries = await client.xrange(hotstore.stream_key(video_id), "-", "+", count=1)
        return entries[0][0] if entries else None

    async def _check_tips(self) -> None:
        """Repair a lost *last* event (no later message reveals the gap).

        The stream being ahead of what was delivered is normal under load:
        the channel-layer messages are queued and arrive on their own, and
        reading them from the stream as well doubles the work of a hub that
        is already behind. So the stream is read only for an event at the tip
        that is older than TIP_GRACE_SECONDS by its stream ID (the time Redis
        appended it), or that was already at the tip at the previous check
        (whatever the clocks say): a lost last event is repaired at the
        first check after it is a second old, within two intervals at most."""
        now_ms = time.time() * 1000
        grace_ms = min(TIP_GRACE_SECONDS, settings.REALTIME_TIP_CHECK_SECONDS) * 1000
        for video_id, sub in list(self.videos.items()):
            if not sub.joined.done():
                continue
            try:
                tip = await self._tip(video_id)
            except redis_client.UNAVAILABLE_ERRORS:
                continue  # its Redis host is away; the others are checked
            tip_position = to_position(tip)
            if tip_position <= sub.last_position:
                sub.tip_ahead = 0
                continue
            old = now_ms - int(tip.partition("-")[0]) >= grace_ms
            if old or sub.tip_ahead > sub.last_position:
                async with sub.lock:
                    if to_position(tip) > sub.last_position:
                        self.stats["tip_repairs"] += 1
                        await self._repair(sub)
            sub.tip_ahead = tip_position if tip_position > sub.last_position else 0

    async def _watch_redis(self) -> None:
        """Notice a Redis host going away and coming back; on its return, resync."""
        down = []
        for url in redis_client.shard_urls():
            try:
                await redis_client.async_client(url).ping()
            except Exception:  # noqa: BLE001
                down.append(url)
        if down:
            if self.redis_up:
                log.warning(
                    "Redis unreachable (%d of %d hosts); will resync when back",
                    len(down),
                    len(redis_client.shard_urls()),
                )
            self.redis_up = False
            return
        if not self.redis_up:
            self.redis_up = True
            log.info("Redis is back: rejoining groups and repairing gaps")
            await self._resync()

    async def _rejoin(self, video_id: int) -> None:
        group = group_name(video_id)
        if hasattr(self.layer, "group_expiry"):
            await self.layer.group_add(group, self.channel_name)  # list layer: re-add the membership
        else:
            # Pub/sub layer: its receiver does not resubscribe after a lost
            # connection, and group_add of a known group is a no-op; leaving
            # and joining again reconnects it, which resubscribes everything.
            await self.layer.group_discard(group, self.channel_name)
            await self.layer.group_add(group, self.channel_name)

    async def _resync(self) -> None:
        """After the channel layer was unreachable: rejoin every group, then repair."""
        for video_id, sub in list(self.videos.items()):
            try:
                await self._rejoin(video_id)
            except Exception as exc:  # noqa: BLE001 - its host is still away; the next check retries
                log.warning("rejoining video %s failed: %s", video_id, exc)
                self.redis_up = False
                continue
            try:
                async with sub.lock:
                    tip = await self._tip(video_id)
                    if tip != ZERO and to_position(tip) < sub.last_position:
                        # A stream that restarted behind what was delivered (its
                        # host's clock is behind the old one's): go on from its tip.
                        sub.advance(tip)
                    else:
                        # Empty or later: what the stream lost comes from the database.
                        await self._repair(sub)
            except (*redis_client.UNAVAILABLE_ERRORS, DatabaseError) as exc:
                # A host that answers PING may not take commands yet (a
                # restarting cluster node), or the database is away: resync
                # again at the next check.
                log.warning("repairing video %s after Redis came back failed: %s", video_id, exc)
                self.redis_up = False
        self.stats["resyncs"] += 1

    # -- periodic work -----------------------------------------------------------

    async def _every(self, seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("%s failed: %s", getattr(job, "__name__", job), exc)

    async def _heartbeat(self) -> None:
        for sub in list(self.videos.values()):
            self._fan_out(sub, PING)

    async def _report_viewers(self) -> None:
        """Publish this process's viewer counts; send totals that changed (at most every interval)."""
        if not self.videos:
            return
        now = int(time.time())
        stale = now - settings.REALTIME_VIEWERS_TTL
        for video_id, sub in list(self.videos.items()):
            local = sum(1 for c in sub.connections if c.viewer)
            client = redis_client.async_for_video(video_id)
            key = viewers_key(video_id)
            try:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.hset(key, self.channel_name, f"{local}:{now}")
                    pipe.expire(key, settings.REALTIME_VIEWERS_TTL * 2)
                    pipe.hgetall(key)
                    _, _, counts = await pipe.execute()
            except redis_client.UNAVAILABLE_ERRORS:
                continue  # its Redis host is away: the other videos' counts go on
            total = _sum_counts(counts, stale)
            if total != sub.viewers_sent:
                sub.viewers_sent = total
                sub.viewers_frame = Frame("viewers", "", '{"count":%d}' % total)
                self._fan_out(sub, sub.viewers_frame)

    def snapshot(self) -> dict:
        return {
            "channel": self.channel_name,
            "videos": {str(v): len(s.connections) for v, s in self.videos.items()},
            "received_by_video": {str(v): n for v, n in self.received_by_video.items()},
            **self.stats,
        }


def _sum_counts(counts: dict, stale_before: int) -> int:
    total = 0
    for value in counts.values():
        count, _, stamp = value.partition(":")
        try:
            if int(stamp) >= stale_before:
                total += int(count)
        except ValueError:
            continue
    return total


def _database_tip(video_id: int) -> str:
    """The last stream position the database knows for a video (a comment or a status change)."""
    last = Comment.objects.filter(video_id=video_id).aggregate(p=Max("position"), s=Max("status_position"))
    return from_position(max(last["p"] or 0, last["s"] or 0))


def viewer_count(video_id: int) -> int:
    """Total viewers of a video over all gateways (sync, for pages and the API)."""
    try:
        counts = cast("dict[str, str]", redis_client.for_video(video_id).hgetall(viewers_key(video_id)))
    except redis_client.UNAVAILABLE_ERRORS:
        return 0
    return _sum_counts(counts, int(time.time()) - settings.REALTIME_VIEWERS_TTL)
