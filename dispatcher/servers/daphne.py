"""Daphne's internals, read here only: Twisted's transport, its buffer and the request."""

from __future__ import annotations

from django.conf import settings

NOT_WRITTEN, WRITTEN, WRITTEN_OVER_BOUND = 0, 1, 2


def is_twisted_tcp(transport) -> bool:
    try:
        from twisted.internet.tcp import Connection as TCPConnection
    except ImportError:  # pragma: no cover - no Daphne
        return False
    return isinstance(transport, TCPConnection) and getattr(transport, "socket", None) is not None


def is_twisted(transport) -> bool:
    return not hasattr(transport, "get_write_buffer_size")


def buffered(transport) -> int:
    data = getattr(transport, "dataBuffer", b"")
    return len(data) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)


def closed(transport) -> bool:
    return not getattr(transport, "connected", True) or bool(getattr(transport, "disconnecting", False))


class SocketWriter:
    """Daphne over plain TCP: send a frame's pre-framed HTTP chunk on the socket itself.

    Twisted's `transport.write` buffers every write and registers the socket
    for writing, and its reactor unregisters it once flushed: two epoll calls
    and a deferred flush per write, most of Daphne's cost per delivery. When
    Twisted holds nothing back for this socket, one `send()` does the same
    and keeps the order; what the kernel does not take goes to Twisted's
    buffer, and later frames queue behind it through Twisted until it is
    written out. Only for a live chunked HTTP/1.1 response (the chunk framing
    is ours then).
    """

    fast_path = False  # checked per write; the hub's burst loop leaves it to the connection
    __slots__ = ("request", "transport", "sock")

    def __init__(self, request, transport):
        self.request = request
        self.transport = transport
        self.sock = transport.socket

    def ready(self) -> bool:
        return True

    def writable(self) -> bool:
        request, transport = self.request, self.transport
        return not (
            request.finished
            or request._disconnected
            or not request.chunked
            or buffered(transport)
            or not transport.connected
            or transport.disconnecting
        )

    def write(self, chunk: bytes) -> int:
        """NOT_WRITTEN means: take the general path (it lets Twisted notice a lost connection)."""
        try:
            sent = self.sock.send(chunk)
        except BlockingIOError:
            sent = 0
        except OSError:
            return NOT_WRITTEN
        if sent < len(chunk):
            self.transport.write(chunk[sent:])
            if buffered(self.transport) > settings.REALTIME_BUFFER_BYTES:
                return WRITTEN_OVER_BOUND
        return WRITTEN
