"""What the rest of the project asks of this process's gateway: long-poll waits, its state for health and metrics."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from dispatcher import publisher
from dispatcher.connections import Waiter
from dispatcher.hub import current_hub, get_hub


class EventWait:
    """A long-poll's place in this process's hub: woken by anything new in one video.

    join() may raise the Redis errors of livecomment.lib.redis_client.UNAVAILABLE_ERRORS;
    leave() must run however the wait ends (a client that left cancels it).
    """

    def __init__(self, video_id: int):
        self._hub = get_hub()
        self._waiter = Waiter(video_id)

    async def join(self) -> None:
        await self._hub.subscribe(self._waiter.video_id, self._waiter)

    async def wait_for_event(self, timeout: float) -> None:
        """Return when something new arrived for the video, or after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._waiter.event.wait(), timeout)
        except TimeoutError:
            pass
        self._waiter.event.clear()

    def leave(self) -> None:
        self._hub.unsubscribe(self._waiter)


@dataclass
class GatewaySnapshot:
    """This process's gateway, read for /metrics (empty when no stream was ever opened here)."""

    channel: str = ""
    shutting_down: bool = False
    videos: int = 0
    connections_by_kind: Counter = field(default_factory=Counter)
    stats: dict = field(default_factory=dict)
    group_sends: int = 0


def gateway_snapshot() -> GatewaySnapshot:
    snap = GatewaySnapshot(group_sends=publisher.stats.get("group_sends", 0))
    hub = current_hub()  # the hub of this event loop (None outside the server's loop)
    if hub is None:
        return snap
    snap.channel = hub.channel_name or ""
    snap.shutting_down = hub.shutting_down
    snap.stats = dict(hub.stats)
    for sub in list(hub.videos.values()):
        snap.videos += 1
        for connection in list(sub.connections):
            snap.connections_by_kind[connection.kind] += 1
    return snap


def gateway_shutting_down() -> bool:
    """Is this process ending its streams for shutdown (readiness says no)?"""
    hub = current_hub()
    return bool(hub is not None and hub.shutting_down)
