"""uvicorn's internals, read here only: its HTTP cycle, transport and flow control."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

WRITTEN = 1


def cycle_of(send) -> RequestResponseCycle | None:
    """uvicorn's (httptools) HTTP cycle behind an ASGI `send`, if that is the server."""
    try:
        from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as HttptoolsCycle
    except ImportError:  # pragma: no cover - uvicorn without httptools
        return None
    owner = getattr(send, "__self__", None)  # uvicorn: bound method of the cycle/protocol
    return owner if isinstance(owner, HttptoolsCycle) else None


class CycleWriter:
    """Writes a live SSE response's pre-framed chunks to uvicorn's transport,
    what its `send` would do after re-framing each one; the hub's burst loop
    may use it directly (`fast_path`)."""

    fast_path = True
    __slots__ = ("cycle", "transport")

    def __init__(self, cycle: RequestResponseCycle):
        self.cycle = cycle
        self.transport = cycle.transport

    def ready(self) -> bool:
        """The response is a chunked one still going: its chunk framing is ours."""
        return bool(self.cycle.chunked_encoding and not self.cycle.response_complete)

    def writable(self) -> bool:
        """Can a chunk be written directly now (the client keeps up and is there)?"""
        cycle = self.cycle
        return not cycle.flow.write_paused and not cycle.disconnected

    def write(self, chunk: bytes) -> int:
        self.transport.write(chunk)
        return WRITTEN


def buffered(transport) -> int:
    return transport.get_write_buffer_size()


def closed(transport) -> bool:
    return transport.is_closing()
