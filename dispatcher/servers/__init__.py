"""The ASGI servers under the gateway: the only place their internals are read.

`TransportProbe` reads how much the server holds for a connection's socket
(and aborts it); `direct_writer` answers "can this SSE response be written
directly?" with a writer for its pre-framed chunks, or None. uvicorn and
Daphne are known; under any other server both are absent and only a
suspending `send` is seen.
"""

from __future__ import annotations

import socket

from dispatcher.servers import daphne, uvicorn
from dispatcher.servers.daphne import NOT_WRITTEN, WRITTEN_OVER_BOUND, SocketWriter
from dispatcher.servers.uvicorn import CycleWriter

__all__ = ["NOT_WRITTEN", "WRITTEN_OVER_BOUND", "CycleWriter", "SocketWriter", "TransportProbe", "direct_writer"]


class TransportProbe:
    """Reads how many bytes wait in the server's socket buffer; aborts it."""

    __slots__ = ("transport", "never_suspends")

    def __init__(self, transport):
        self.transport = transport
        # Daphne never suspends a send (it has no write backpressure): its buffer is read after each write.
        self.never_suspends = daphne.is_twisted(transport)

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
        if not self.never_suspends:
            return uvicorn.buffered(t)
        return daphne.buffered(t)

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
        if not self.never_suspends:
            return uvicorn.closed(t)
        return daphne.closed(t)

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


def direct_writer(send, probe: TransportProbe | None) -> CycleWriter | SocketWriter | None:
    """A writer of an SSE response's pre-framed chunks straight to the server's transport, where the server allows it."""
    cycle = uvicorn.cycle_of(send)
    if cycle is not None:
        return CycleWriter(cycle)
    if probe is not None and probe.never_suspends and daphne.is_twisted_tcp(probe.transport):
        return SocketWriter(send.args[0], probe.transport)
    return None
