"""One viewer's connection, as the hub writes to it.

The fast path calls the ASGI server's `send` directly and drives the
coroutine by hand: when the server accepts the bytes without suspending (its
socket keeps up) the write costs no task, no queue and no await. A connection
whose send suspends (uvicorn pauses a transport above its write high-water
mark) leaves the fast path: the suspended send is finished by a task of its
own, and later frames wait in a bounded buffer that is written as one
coalesced chunk when the send completes. Past the buffer's bounds the
connection is closed and the client resumes from its last id, so one stalled
client never holds up the others (invariant 6).

Daphne never suspends a send (it has no write backpressure), so for it the
transport's own buffer is read after each write and the same bound applies.
What either server holds, and whether a live SSE response may be written to
its transport directly, is read in dispatcher/servers/ only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from django.conf import settings

from dispatcher import servers
from dispatcher.frames import Burst, Frame, sse_retry
from dispatcher.servers import CycleWriter, SocketWriter, TransportProbe

log = logging.getLogger(__name__)

# A catching-up client that takes none of a page for this long is cut off (it resumes).
CATCHUP_STALL_SECONDS = 30.0


class _Resume:
    """Await a coroutine that was started by hand and suspended on `future`."""

    __slots__ = ("coro", "future")

    def __init__(self, coro, future):
        self.coro, self.future = coro, future

    def __await__(self):
        future = self.future
        while True:
            try:
                yield future
            except BaseException as exc:  # noqa: BLE001 - cancelled (or thrown into) while waiting: pass it on
                try:
                    future = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                future = self.coro.send(None)
            except StopIteration as stop:
                return stop.value


class Connection:
    """Base: SSE and WebSocket differ only in the message they send."""

    kind = "base"
    __slots__ = (
        "_send",
        "video_id",
        "moderator",
        "viewer",
        "skip_to",
        "last_id",
        "started",
        "closed",
        "buffer",
        "buffered_bytes",
        "pending",
        "probe",
        "on_close",
        "close_reason",
        "fast",
        "__weakref__",
    )

    def __init__(
        self,
        send,
        video_id: int,
        moderator: bool = False,
        viewer: bool = True,
        on_close: Callable[[Connection, str], None] | None = None,
    ):
        self._send = send
        self.video_id = video_id
        self.moderator = moderator
        self.viewer = viewer  # counts in the `viewers` total
        self.skip_to = 0  # live events at or before this position are already sent
        self.last_id = ""
        self.started = False  # False while catching up (dispatcher/streams.py catch_up): live frames are dropped
        self.closed = False
        self.buffer: deque | None = None  # made when the connection first falls behind
        self.buffered_bytes = 0
        self.pending: asyncio.Future | None = None
        self.probe = TransportProbe.for_send(send)
        if self.probe is not None and settings.REALTIME_SOCKET_SNDBUF:
            self.probe.limit_send_buffer(settings.REALTIME_SOCKET_SNDBUF)
        self.on_close = on_close
        self.close_reason = ""
        # True while the hub may write a frame's pre-framed bytes to the
        # transport itself (SSEConnection under uvicorn: live, keeping up).
        self.fast = False

    # -- what differs per transport --
    def message(self, frame: Frame | Burst) -> dict:
        raise NotImplementedError

    def size(self, message: dict) -> int:
        raise NotImplementedError

    def coalesce(self, messages: list[dict]) -> list[dict]:
        return messages

    def coalesces(self, burst: Burst) -> bool:
        """Whether this connection takes a burst as one message (else frame by frame)."""
        return False

    def _update_fast(self) -> None:
        pass

    def final_message(self, retry_ms: int) -> dict | None:
        return None

    # -- the hub's side --
    def deliver(self, frame: Frame | Burst) -> None:
        if self.closed:
            return
        if frame.frames is not None and not self.coalesces(frame):
            for one in frame.frames:
                self.deliver(one)
            return
        if frame.audience and not self.moderator:
            return
        if not self.started:
            return  # catching up: the pages hold it (streams.catch_up reads on until they reach the hub)
        position = frame.position
        if position:
            if position <= self.skip_to:
                return  # already sent (backlog, or a repaired gap)
            self.skip_to = position
            self.last_id = frame.id
        message = self.message(frame)
        if self.pending is not None:
            self._enqueue(message)
        else:
            self._write(message)

    def start(self, after_position: int) -> None:
        """The backlog (up to `after_position`) is sent: go live."""
        if self.closed:
            return
        self.skip_to = max(self.skip_to, after_position)
        self.started = True
        self._update_fast()

    def gone(self) -> bool:
        """The client's socket is closed (seen before its disconnect message is read)."""
        return self.probe is not None and self.probe.closed()

    async def send_final(self) -> None:
        """Send what `finish()` queued while the connection was catching up
        (a drain's last message: the client resumes elsewhere at once)."""
        buffer, self.buffer = self.buffer, None
        self.buffered_bytes = 0
        for message in buffer or ():
            try:
                await self._send(message)
            except Exception:  # noqa: BLE001 - the client is gone
                return

    async def wait_for_buffer_below(self, below: int) -> bool:
        """Wait until the transport holds at most `below` bytes (catch-up's flow
        control: the next page is read only once the client took this one).
        False when the client went, or took nothing for CATCHUP_STALL_SECONDS
        (then the connection is closed; the client resumes)."""
        probe = self.probe
        if probe is None:
            return not self.closed
        loop = asyncio.get_running_loop()
        size = probe.buffered()
        deadline = loop.time() + CATCHUP_STALL_SECONDS
        while size > below and not self.closed and not probe.closed():
            await asyncio.sleep(0.005)
            now, before, size = loop.time(), size, probe.buffered()
            if size < before:
                deadline = now + CATCHUP_STALL_SECONDS
            elif now > deadline:
                probe.abort()
                self.close("stalled while catching up")
        return not self.closed and not probe.closed()

    def stop(self) -> None:
        """The stream is over (the client went): accept nothing more."""
        self.closed = True
        self.fast = False

    def send_now(self, message: dict) -> None:
        """A reply of the connection's own (WebSocket ack), in order with events."""
        if self.closed:
            return
        if self.pending is not None:
            self._enqueue(message)
        else:
            self._write(message)

    def _enqueue(self, message: dict) -> None:
        if self.buffer is None:
            self.buffer = deque()
        self.buffer.append(message)
        self.buffered_bytes += self.size(message)
        if len(self.buffer) > settings.REALTIME_BUFFER_EVENTS or self.buffered_bytes > settings.REALTIME_BUFFER_BYTES:
            self.close("overflow")

    def _write(self, message: dict) -> None:
        coro = self._send(message)
        try:
            future = coro.send(None)
        except StopIteration:
            probe = self.probe
            if probe is not None and probe.never_suspends and probe.buffered() > settings.REALTIME_BUFFER_BYTES:
                self.close("overflow")
            return
        except Exception as exc:  # noqa: BLE001 - the client is gone
            self.close(f"send failed: {exc!r}")
            return
        self.fast = False
        self.pending = asyncio.ensure_future(self._finish(coro, future))

    async def _finish(self, coro, future) -> None:
        try:
            await _Resume(coro, future)
            await self._write_pending()
        except asyncio.CancelledError:
            coro.close()
        except Exception as exc:  # noqa: BLE001
            self.close(f"send failed: {exc!r}")
        finally:
            self.pending = None
            self._update_fast()

    async def _write_pending(self) -> None:
        while self.buffer and (not self.closed or self.close_reason == ""):
            messages = list(self.buffer)
            self.buffer.clear()
            self.buffered_bytes = 0
            for message in self.coalesce(messages):
                await self._send(message)

    def finish(self, message: dict) -> None:
        """Send a last message (after what is queued) and stop: used to end streams on shutdown."""
        if self.closed:
            return
        self.fast = False
        if self.pending is not None or not self.started:
            self._enqueue(message)
        else:
            self._write(message)
        self.closed = True  # nothing more is accepted; what is buffered still goes out

    def close(self, reason: str) -> None:
        """Stop writing; abort the socket when it is stuck; tell the owner."""
        if self.closed:
            return
        self.closed = True
        self.fast = False
        self.close_reason = reason
        self.buffer = None
        self.buffered_bytes = 0
        pending, self.pending = self.pending, None
        if pending is not None and not pending.done():
            pending.cancel()
        if reason == "overflow":
            log.info("closing slow %s client of video %s: buffer overflow", self.kind, self.video_id)
            if self.probe is not None:
                self.probe.abort()
        if self.on_close is not None:
            try:
                self.on_close(self, reason)
            except Exception:
                log.exception("on_close failed")


class SSEConnection(Connection):
    kind = "sse"
    __slots__ = ("direct",)
    direct: CycleWriter | SocketWriter | None

    def __init__(self, send, *args, **kwargs):
        super().__init__(send, *args, **kwargs)
        # Under uvicorn or Daphne: a writer of pre-framed chunks to the server's transport.
        self.direct = servers.direct_writer(send, self.probe)

    def _update_fast(self) -> None:
        direct = self.direct
        self.fast = bool(
            direct is not None
            and direct.fast_path
            and self.started
            and self.pending is None
            and not self.closed
            and direct.ready()
        )

    def coalesces(self, burst: Burst) -> bool:
        return self.started and self.pending is None and not burst.audience and burst.first_position > self.skip_to

    def deliver(self, frame: Frame | Burst) -> None:
        """The fast path of the fast path: write the frame's pre-framed chunk
        to the server's transport directly (under uvicorn, what its `send`
        would do after re-framing it for each connection; under Daphne, one
        `send()` on the socket while Twisted holds nothing back), as long as
        the connection keeps up; anything else takes the general path.
        Hub._write_burst inlines the uvicorn case for a whole video."""
        direct = self.direct
        if self.fast and frame.first_position > self.skip_to and not frame.audience:
            # `fast` is only ever True with a fast-path writer (_update_fast).
            if direct.writable():  # type: ignore[union-attr]
                self.skip_to = frame.position
                self.last_id = frame.id
                direct.write(frame.sse_chunk)  # type: ignore[union-attr]
                return
        elif (
            direct is not None
            and not direct.fast_path
            and self.started
            and self.pending is None
            and not self.closed
            and frame.first_position > self.skip_to
            and not frame.audience
            and direct.writable()
        ):
            result = direct.write(frame.sse_chunk)
            if result != servers.NOT_WRITTEN:
                if result == servers.WRITTEN_OVER_BOUND:
                    self.close("overflow")
                self.skip_to = frame.position
                self.last_id = frame.id
                return
        Connection.deliver(self, frame)

    def final_message(self, retry_ms: int) -> dict:
        return {"type": "http.response.body", "body": sse_retry(retry_ms), "more_body": False}

    async def end(self) -> None:
        """End the response (when the socket cannot be aborted)."""
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    def message(self, frame: Frame | Burst) -> dict:
        return frame.sse_message

    def size(self, message: dict) -> int:
        return len(message.get("body", b""))

    def coalesce(self, messages: list[dict]) -> list[dict]:
        if len(messages) == 1:
            return messages
        more = messages[-1].get("more_body", True)
        return [{"type": "http.response.body", "body": b"".join(m["body"] for m in messages), "more_body": more}]


class WebSocketConnection(Connection):
    kind = "ws"
    __slots__ = ()

    def final_message(self, retry_ms: int) -> dict:
        # 4503 ("unavailable: reconnect"): Daphne's WebSocket library only
        # lets a server close with 1000 or 3000-4999, so not 1001/1012.
        return {"type": "websocket.close", "code": 4503}

    def message(self, frame: Frame | Burst) -> dict:
        # Never a Burst: a WebSocket connection takes them frame by frame (it does not coalesce).
        return frame.ws_message  # type: ignore[union-attr]

    def size(self, message: dict) -> int:
        return len(message.get("text") or "") + len(message.get("bytes") or b"")


class Waiter(Connection):
    """A long-poll request waiting for anything new in a video (not a viewer)."""

    kind = "wait"
    __slots__ = ("event",)

    def __init__(self, video_id: int):
        super().__init__(None, video_id, viewer=False)
        self.event = asyncio.Event()
        self.started = True

    def deliver(self, frame: Frame | Burst) -> None:
        if frame.position:
            self.event.set()
