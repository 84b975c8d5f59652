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

Daphne never suspends a send (daphne#170: it has no write backpressure), so
for it the transport's own buffer is read after each write and the same
bound applies. A live SSE connection under Daphne whose Twisted buffer is
empty gets each frame's pre-framed chunk with one `send()` on its socket
(`SSEConnection._write_socket`): Twisted's own write path registers and
unregisters the socket with epoll for every write.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings

from dispatcher.frames import Burst, Frame

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

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


class TransportProbe:
    """Reads how many bytes wait in the server's socket buffer; aborts it.

    Knows uvicorn (asyncio transports) and Daphne (Twisted transports); with
    any other server it is absent and only suspension is detected.
    """

    __slots__ = ("transport", "twisted")

    def __init__(self, transport):
        self.transport = transport
        self.twisted = not hasattr(transport, "get_write_buffer_size")

    @classmethod
    def for_send(cls, send) -> TransportProbe | None:
        owner = getattr(send, "__self__", None)  # uvicorn: bound method of the cycle/protocol
        if owner is None and getattr(send, "args", None):  # daphne: partial(server.handle_reply, protocol)
            owner = send.args[0]
            channel = getattr(owner, "channel", None)
            if channel is not None:
                owner = channel
        transport = getattr(owner, "transport", None)
        return cls(transport) if transport is not None else None

    def buffered(self) -> int:
        t = self.transport
        if t is None:
            return 0
        if not self.twisted:
            return t.get_write_buffer_size()
        data = getattr(t, "dataBuffer", b"")
        return len(data) - getattr(t, "offset", 0) + getattr(t, "_tempDataLen", 0)

    def limit_send_buffer(self, size: int) -> None:
        """Cap the kernel's send buffer, so a stalled reader is noticed after
        `size` bytes instead of after the kernel's autotuned megabytes."""
        t = self.transport
        sock = t.get_extra_info("socket") if hasattr(t, "get_extra_info") else getattr(t, "socket", None)
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            except OSError:
                pass

    def closed(self) -> bool:
        t = self.transport
        if t is None:
            return False
        if not self.twisted:
            return t.is_closing()
        return not getattr(t, "connected", True) or bool(getattr(t, "disconnecting", False))

    def abort(self) -> None:
        t = self.transport
        if t is None:
            return
        try:
            if hasattr(t, "abortConnection"):
                t.abortConnection()
            elif hasattr(t, "abort"):
                t.abort()
            else:
                t.loseConnection()
        except Exception:  # noqa: BLE001 - already gone
            pass


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
            if probe is not None and probe.twisted and probe.buffered() > settings.REALTIME_BUFFER_BYTES:
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
    __slots__ = ("cycle", "transport", "request", "sock")
    cycle: RequestResponseCycle | None
    transport: asyncio.Transport | None

    def __init__(self, send, *args, **kwargs):
        super().__init__(send, *args, **kwargs)
        # uvicorn's HTTP cycle, when the hub may write frames to its
        # transport itself (see `fast` and Hub._write_burst).
        owner = getattr(send, "__self__", None)
        self.cycle = owner if _is_uvicorn_cycle(owner) else None
        self.transport = self.cycle.transport if self.cycle is not None else None
        # Daphne over plain TCP: its request and the socket, for `_write_socket`.
        self.request = self.sock = None
        probe = self.probe
        if self.cycle is None and probe is not None and probe.twisted and _is_twisted_tcp(probe.transport):
            self.request = send.args[0]
            self.sock = probe.transport.socket

    def _update_fast(self) -> None:
        cycle = self.cycle
        self.fast = bool(
            cycle is not None
            and self.started
            and self.pending is None
            and not self.closed
            and cycle.chunked_encoding
            and not cycle.response_complete
        )

    def coalesces(self, burst: Burst) -> bool:
        return self.started and self.pending is None and not burst.audience and burst.first_position > self.skip_to

    def deliver(self, frame: Frame | Burst) -> None:
        """The fast path of the fast path: under uvicorn, write the frame's
        pre-framed chunk to the transport directly (what uvicorn's `send`
        would do after re-framing it for each connection), as long as the
        connection keeps up; anything else takes the general path.
        Hub._write_burst inlines the same test for a whole video."""
        if self.fast and frame.first_position > self.skip_to and not frame.audience:
            cycle = self.cycle
            # `fast` is only ever True with a cycle and its transport (_update_fast).
            if not cycle.flow.write_paused and not cycle.disconnected:  # type: ignore[union-attr]
                self.skip_to = frame.position
                self.last_id = frame.id
                self.transport.write(frame.sse_chunk)  # type: ignore[union-attr]
                return
        elif (
            self.sock is not None
            and self.started
            and self.pending is None
            and not self.closed
            and frame.first_position > self.skip_to
            and not frame.audience
            and self._write_socket(frame.sse_chunk)
        ):
            self.skip_to = frame.position
            self.last_id = frame.id
            return
        Connection.deliver(self, frame)

    def _write_socket(self, chunk: bytes) -> bool:
        """Daphne: send the frame's pre-framed HTTP chunk on the socket itself.

        Twisted's `transport.write` buffers every write and registers the
        socket for writing, and its reactor unregisters it once flushed: two
        epoll calls and a deferred flush per write, most of Daphne's cost
        per delivery (the issue's profile: 42 % and 23 %). When Twisted holds
        nothing back for this socket, one `send()` does the same and keeps the
        order; what the kernel does not take goes to Twisted's buffer, and
        later frames queue behind it through Twisted until it has drained.
        Only for a live chunked HTTP/1.1 response (the chunk framing is ours
        then); False means: take the general path."""
        request, probe = self.request, self.probe
        if (
            request.finished  # type: ignore[union-attr]
            or request._disconnected  # type: ignore[union-attr]
            or not request.chunked  # type: ignore[union-attr]
            or probe.buffered()  # type: ignore[union-attr]
        ):
            return False
        transport = probe.transport  # type: ignore[union-attr]
        if not transport.connected or transport.disconnecting:
            return False
        try:
            sent = self.sock.send(chunk)  # type: ignore[union-attr]
        except BlockingIOError:
            sent = 0
        except OSError:
            return False  # the general path lets Twisted notice the lost connection
        if sent < len(chunk):
            transport.write(chunk[sent:])
            if probe.buffered() > settings.REALTIME_BUFFER_BYTES:  # type: ignore[union-attr]
                self.close("overflow")
        return True

    def final_message(self, retry_ms: int) -> dict:
        return {"type": "http.response.body", "body": b"retry: %d\n\n" % retry_ms, "more_body": False}

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


def _is_twisted_tcp(transport) -> bool:
    try:
        from twisted.internet.tcp import Connection as TCPConnection
    except ImportError:  # pragma: no cover - no Daphne
        return False
    return isinstance(transport, TCPConnection) and getattr(transport, "socket", None) is not None


def _is_uvicorn_cycle(owner) -> bool:
    try:
        from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as HttptoolsCycle
    except ImportError:  # pragma: no cover - uvicorn without httptools
        return False
    return isinstance(owner, HttptoolsCycle)


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
