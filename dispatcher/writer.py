"""The burst writer: frames handed to a video's connections, written a bounded number per turn of the loop."""

from __future__ import annotations

import asyncio
import logging

from dispatcher.frames import PING, Burst, Frame
from dispatcher.subscription import HubState, VideoSubscription

log = logging.getLogger(__name__)

# Connection writes per turn of the event loop (Hub._write_some): a few
# milliseconds, then requests waiting for the loop get their turn.
WRITES_PER_TURN = 512


class BurstWriter(HubState):
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
        """Write everything handed out so far, now (before the streams end for shutdown)."""
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
                    # Only an SSEConnection with a fast-path writer (uvicorn) is ever `fast`.
                    direct = connection.direct  # type: ignore[attr-defined]
                    if direct.writable():
                        if first:
                            connection.skip_to = last
                            connection.last_id = last_id
                        try:
                            direct.write(chunk)
                        except Exception as exc:  # noqa: BLE001 - the transport is closing: the client is gone
                            connection.close(f"send failed: {exc!r}")
                        continue
                connection.deliver(item)
        if end >= len(connections):
            sub.burst = sub.burst_connections = None
        else:
            sub.burst_next = end
        return max(1, end - start)

    async def _heartbeat(self) -> None:
        for sub in list(self.videos.values()):
            self._fan_out(sub, PING)
