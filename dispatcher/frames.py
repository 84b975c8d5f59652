"""Frames: one event encoded once per process, for every SSE and WebSocket client.

SSE:        id: <position>\nevent: <type>\ndata: <json>\n\n
WebSocket:  {"event": <type>, "id": <position>, "data": <json>}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from comments.cursors import to_position

if TYPE_CHECKING:
    from comments.hotstore import StreamEvent

# SSE bytes no parser surfaces as an event of their own. A comment line needs
# no blank line after it, and gets none: some parsers (httpx-sse) dispatch an
# empty `message` at any blank line once the stream has had an `id:`, so a
# ping is one comment line that the next frame's blank line ends along with
# that frame. `retry:` likewise goes on a line of its own with no blank line:
# EventSource applies it as the line is read (WHATWG), and parsers that hand
# it out with an event hand it out with the next real one.
PING_SSE = b": ping\n"
PING_WS = '{"event":"ping"}'  # dispatcher.protocol.PingFrame
RETRY_MS = 2000
# ~2 KB of comment first, so buffering proxies flush the stream's first bytes
# (a block with no field at all: nothing to dispatch, before any `id:`).
SSE_PADDING = b":" + b" " * 2048 + b"\n\n"


def sse_retry(retry_ms: int) -> bytes:
    """The `retry:` line, without a blank line (see PING_SSE)."""
    return b"retry: %d\n" % retry_ms


class _Encoded(Protocol):
    """What _SSEEncodings needs of the class it is mixed into (whose slots hold these)."""

    _sse_msg: dict[str, Any] | None
    _chunk: bytes | None

    @property
    def sse(self) -> bytes: ...


class _SSEEncodings:
    """The ASGI message and the HTTP/1.1 chunk of `sse`, each built once
    (servers only read them); for a Frame and a Burst alike."""

    __slots__ = ()
    # Held in the subclasses' slots.
    _sse_msg: dict[str, Any] | None
    _chunk: bytes | None

    @property
    def sse_message(self: _Encoded) -> dict:
        if self._sse_msg is None:
            self._sse_msg = {"type": "http.response.body", "body": self.sse, "more_body": True}
        return self._sse_msg

    @property
    def sse_chunk(self: _Encoded) -> bytes:
        """The SSE bytes framed as one HTTP/1.1 chunk, for writing to a
        transport directly (Hub._write_burst, SSEConnection.deliver)."""
        if self._chunk is None:
            body = self.sse
            self._chunk = b"%x\r\n%s\r\n" % (len(body), body)
        return self._chunk


class Frame(_SSEEncodings):
    """One event, encoded lazily and at most once for each transport."""

    __slots__ = (
        "type",
        "id",
        "position",
        "first_position",
        "data",
        "audience",
        "_sse",
        "_ws",
        "_sse_msg",
        "_ws_msg",
        "_chunk",
    )
    frames = None  # not a Burst
    _sse: bytes | None
    _ws: str | None
    _ws_msg: dict[str, Any] | None

    def __init__(self, type: str, id: str, data: str, audience: str = ""):
        self.type = type
        self.id = id  # "" for events that are not in the stream (viewers, ping)
        self.position = self.first_position = to_position(id) if id else 0
        self.data = data  # JSON text
        self.audience = audience
        self._sse = self._ws = None
        self._sse_msg = self._ws_msg = None
        self._chunk = None

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            if self.type == "ping":
                self._sse = PING_SSE
            elif self.id:
                self._sse = f"id: {self.id}\nevent: {self.type}\ndata: {self.data}\n\n".encode()
            else:
                self._sse = f"event: {self.type}\ndata: {self.data}\n\n".encode()
        return self._sse

    @property
    def ws(self) -> str:
        if self._ws is None:
            if self.type == "ping":
                self._ws = PING_WS
            elif self.id:
                self._ws = f'{{"event":"{self.type}","id":"{self.id}","data":{self.data}}}'
            else:
                self._ws = f'{{"event":"{self.type}","data":{self.data}}}'
        return self._ws

    @property
    def ws_message(self) -> dict:
        if self._ws_msg is None:
            self._ws_msg = {"type": "websocket.send", "text": self.ws}
        return self._ws_msg

    @classmethod
    def from_stream(cls, event: StreamEvent) -> Frame:
        return cls(event.type, event.id, event.data, event.audience)

    def __repr__(self) -> str:
        return f"<Frame {self.type} {self.id}>"


PING = Frame("ping", "", "{}")


class Burst(_SSEEncodings):
    """Several frames of one video handed out together: the ones that reached
    the hub in one turn of the event loop (it was busy, so they queued up).
    An SSE connection that has seen none of them gets them as one write;
    anything else takes them frame by frame (Connection.deliver). Quacks like
    a Frame where the connections look: `position`/`id` are the last
    event's, `first_position` the first event's."""

    __slots__ = ("frames", "first_position", "position", "id", "audience", "_sse", "_sse_msg", "_chunk")
    _sse: bytes | None

    def __init__(self, frames: list[Frame]):
        self.frames = frames
        positioned = [f for f in frames if f.position]
        self.first_position = positioned[0].position if positioned else 0
        self.position = positioned[-1].position if positioned else 0
        self.id = positioned[-1].id if positioned else ""
        self.audience = next((f.audience for f in frames if f.audience), "")
        self._sse = self._sse_msg = self._chunk = None

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = b"".join(f.sse for f in self.frames)
        return self._sse

    def __repr__(self) -> str:
        return f"<Burst of {len(self.frames)} up to {self.id}>"
