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

This module holds subscription and receive; `Hub` gets its other jobs from
dispatcher/ordering.py (gap repair), writer.py (the burst writer),
lifecycle.py (start, Redis watch and resync, shutdown) and viewers.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque

from channels.layers import get_channel_layer
from django.db import DatabaseError

from comments.cursors import ZERO
from dispatcher.auth import run_sync
from dispatcher.connections import Connection
from dispatcher.frames import Frame
from dispatcher.lifecycle import Lifecycle
from dispatcher.ordering import database_tip
from dispatcher.publisher import MESSAGE_TYPE, group_name
from dispatcher.subscription import VideoSubscription
from dispatcher.viewers import viewers_key
from livecomment.lib import redis_client

log = logging.getLogger(__name__)

_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


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


class Hub(Lifecycle):
    def __init__(self):
        self.layer = get_channel_layer()
        self.channel_name: str | None = None
        self.videos: dict[int, VideoSubscription] = {}
        self.tasks: list[asyncio.Task] = []
        self.started = False
        self._start_lock = asyncio.Lock()
        self.shutting_down = False
        self.redis_up = True
        self.stats: Counter = Counter()
        self.received_by_video: Counter = Counter()
        self._active: deque[VideoSubscription] = deque()  # subscriptions with frames to write
        self._write_handle: asyncio.Handle | None = None

    # -- lifecycle -------------------------------------------------------------

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
            # A task of its own: the first connection leaving midway must not fail the others' join.
            sub.join_task = asyncio.get_running_loop().create_task(self._join(sub))
        sub.connections.add(connection)
        try:
            await asyncio.shield(sub.joined)
        except BaseException:
            # A caller cancelled here never gets a subscription to unsubscribe: leave for it.
            self._drop(sub, connection)
            raise
        self.stats["connections_opened"] += 1
        return sub

    async def _join(self, sub: VideoSubscription) -> None:
        video_id = sub.video_id
        try:
            await self.layer.group_add(group_name(video_id), self.channel_name)
            tip = await self._tip(video_id)
            if tip == ZERO:
                # An empty stream (Redis came back without its data): the
                # history is in the database, and a later repair must start
                # after it, not from the video's first comment.
                try:
                    tip = await run_sync(database_tip, video_id)
                except DatabaseError:
                    pass  # streaming from Redis alone: nothing to repair from either
            sub.advance(tip)
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure, whatever it is
            if self.videos.get(video_id) is sub:
                del self.videos[video_id]
            sub.joined.set_exception(exc)
            sub.joined.exception()  # mark retrieved
            return
        sub.joined.set_result(True)
        self.stats["groups_joined"] += 1
        if not sub.connections and self.videos.get(video_id) is sub:  # all who waited have left
            del self.videos[video_id]
            await self._leave(video_id)

    def unsubscribe(self, connection: Connection) -> None:
        sub = self.videos.get(connection.video_id)
        if sub is None or connection not in sub.connections:
            return
        self.stats["connections_closed"] += 1
        self._drop(sub, connection)

    def _drop(self, sub: VideoSubscription, connection: Connection) -> None:
        # While the join is pending, _join itself leaves the group if nobody is left.
        sub.connections.discard(connection)
        if not sub.connections and sub.joined.done() and self.videos.get(sub.video_id) is sub:
            del self.videos[sub.video_id]
            asyncio.get_running_loop().create_task(self._leave(sub.video_id))

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

    # -- periodic work -----------------------------------------------------------

    def snapshot(self) -> dict:
        return {
            "channel": self.channel_name,
            "videos": {str(v): len(s.connections) for v, s in self.videos.items()},
            "received_by_video": {str(v): n for v, n in self.received_by_video.items()},
            **self.stats,
        }
