"""One video's place in this process's hub, and the state every part of the hub shares."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from comments.cursors import ZERO, to_position

if TYPE_CHECKING:
    from dispatcher.connections import Connection
    from dispatcher.frames import Burst, Frame


class VideoSubscription:
    __slots__ = (
        "video_id",
        "connections",
        "last_id",
        "last_position",
        "lock",
        "joined",
        "join_task",
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
        self.join_task: asyncio.Task | None = None  # the group join, kept referenced while it runs
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


class HubState:
    """What the hub's parts (receive, ordering, writer, lifecycle, viewers) read and write; set in Hub.__init__."""

    layer: Any
    channel_name: str | None
    videos: dict[int, VideoSubscription]
    tasks: list[asyncio.Task]
    started: bool
    _start_lock: asyncio.Lock
    shutting_down: bool
    redis_up: bool
    stats: Counter
    received_by_video: Counter
    _active: deque[VideoSubscription]
    _write_handle: asyncio.Handle | None
