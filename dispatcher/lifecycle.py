"""The hub's life: start, periodic jobs, Redis watch and resync after an outage, shutdown of every stream."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading

from django.conf import settings
from django.db import DatabaseError

from comments.cursors import ZERO, to_position
from dispatcher.ordering import GapRepair
from dispatcher.publisher import group_name
from dispatcher.viewers import ViewerCounts
from livecomment.lib import redis_client

log = logging.getLogger(__name__)


class Lifecycle(GapRepair, ViewerCounts):
    async def _receive_loop(self) -> None:  # the hub's receiver (Hub)
        raise NotImplementedError

    async def _refresh_groups(self) -> None:
        for video_id in list(self.videos):
            await self.layer.group_add(group_name(video_id), self.channel_name)

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
        """On SIGTERM, end the streams first (every stream gets a final `retry:` and a
        clean end, so clients resume elsewhere at once), then let the
        server's own SIGTERM handling stop the process."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum, frame):
            if self.shutting_down:
                return
            self.shutting_down = True

            async def drain_then_stop():
                try:
                    await self.end_streams_for_shutdown()
                finally:
                    if callable(previous):
                        previous(signum, frame)
                    elif previous == signal.SIG_DFL:
                        signal.signal(signal.SIGTERM, signal.SIG_DFL)
                        os.kill(os.getpid(), signal.SIGTERM)

            loop.call_soon_threadsafe(lambda: loop.create_task(drain_then_stop()))

        signal.signal(signal.SIGTERM, on_sigterm)

    async def end_streams_for_shutdown(self, timeout: float | None = None) -> int:
        """End every stream of this process cleanly; returns how many."""
        self.shutting_down = True
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
        joins = [sub.join_task for sub in self.videos.values() if sub.join_task and not sub.join_task.done()]
        for task in joins:
            task.cancel()
        for task in joins:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        for video_id in list(self.videos):
            try:
                await self.layer.group_discard(group_name(video_id), self.channel_name)
            except Exception:  # noqa: BLE001
                pass
        self.videos.clear()
        self.started = False

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

    async def _every(self, seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("%s failed: %s", getattr(job, "__name__", job), exc)
