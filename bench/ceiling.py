"""The Python ceiling: a bare asyncio + uvloop SSE broadcast server.

    python -m bench.ceiling --port 9000

`GET <any path>` (Accept: text/event-stream) opens a stream: `retry: 2000`,
then every published event (the `retry:` and `: ping` lines without a blank
line, as livecomment sends them: dispatcher/frames.py). `POST /publish` with {"text": "..."} assigns the
next position, encodes the frame *once* (SSE text wrapped in one HTTP/1.1
chunk, exactly what a chunked streaming response sends) and writes the same
bytes object to every open socket, then answers 201 with the comment JSON --
the same request shape as livecomment's REST API, so one publisher drives
both. `GET /healthz` answers 200.

A connection whose unsent data exceeds 1 MiB is closed (the slow-client rule
livecomment follows too); heartbeats (`: ping`) go out every 15 s. No Django,
no Channels, no Redis: this measures what Python's event loop can do on this
machine, the number the product's fan-out is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import time
from datetime import UTC, datetime

MAX_BUFFER = 1 << 20
RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Hub:
    def __init__(self):
        self.streams: set[asyncio.Transport] = set()
        self.seq = 0
        self.last_ms = 0
        self.sub = 0
        self.dropped = 0

    def next_cursor(self) -> str:
        ms = int(time.time() * 1000)
        if ms <= self.last_ms:
            ms = self.last_ms
            self.sub += 1
        else:
            self.last_ms = ms
            self.sub = 0
        return f"{ms}-{self.sub}"

    def publish(self, text: str) -> dict:
        self.seq += 1
        cursor = self.next_cursor()
        data = {
            "id": self.seq,
            "cursor": cursor,
            "video": 1,
            "author": {"id": 1, "name": "bench"},
            "text": text,
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        frame = chunk(f"id: {cursor}\nevent: comment\ndata: {body}\n\n".encode())
        self.broadcast(frame)
        return data

    def broadcast(self, frame: bytes) -> None:
        slow = []
        for t in self.streams:
            t.write(frame)
            if t.get_write_buffer_size() > MAX_BUFFER:
                slow.append(t)
        for t in slow:
            self.streams.discard(t)
            self.dropped += 1
            t.abort()


class HTTPProtocol(asyncio.Protocol):
    def __init__(self, hub: Hub):
        self.hub = hub
        self.buf = b""
        self.transport = None
        self.streaming = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        self.hub.streams.discard(self.transport)

    def data_received(self, data):
        if self.streaming:
            return  # clients say nothing on a stream
        self.buf += data
        for _ in range(64):  # pipelined requests, bounded per read
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.transport.abort()
                return
            head = self.buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, path, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            self.handle(method, path, body)
            if self.streaming:
                return

    def respond(self, status: str, body: bytes, ctype: str = "application/json") -> None:
        self.transport.write(
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )

    def handle(self, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path.startswith("/publish"):
            try:
                text = json.loads(body)["text"]
            except (ValueError, KeyError, TypeError):
                self.respond("400 Bad Request", b'{"error":"body must be {\\"text\\": ...}"}')
                return
            data = self.hub.publish(str(text))
            self.respond("201 Created", json.dumps(data).encode())
        elif method == "GET" and path.startswith("/healthz"):
            self.respond("200 OK", json.dumps({"status": "ok", "streams": len(self.hub.streams)}).encode())
        elif method == "GET":
            self.streaming = True
            self.transport.write(RESPONSE_HEAD + chunk(b"retry: 2000\n"))
            self.hub.streams.add(self.transport)
        else:
            self.respond("405 Method Not Allowed", b"{}")


async def heartbeat(hub: Hub) -> None:
    frame = chunk(b": ping\n")
    while True:
        await asyncio.sleep(15)
        hub.broadcast(frame)


async def serve(host: str, port: int, fd: int | None) -> None:
    loop = asyncio.get_running_loop()
    hub = Hub()
    if fd is not None:
        sock = socket.socket(fileno=fd)
        server = await loop.create_server(lambda: HTTPProtocol(hub), sock=sock, backlog=4096)
    else:
        server = await loop.create_server(lambda: HTTPProtocol(hub), host, port, backlog=4096, reuse_address=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    beat = loop.create_task(heartbeat(hub))
    print(f"ceiling listening on {host}:{port} (pid {os.getpid()})", flush=True)
    await stop
    beat.cancel()
    server.close()
    for t in list(hub.streams):
        t.abort()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--fd", type=int, default=None, help="serve on an inherited listening socket")
    args = parser.parse_args(argv)
    from bench.client import raise_nofile, run_loop

    raise_nofile()
    run_loop(serve(args.host, args.port, args.fd))


if __name__ == "__main__":
    main()
