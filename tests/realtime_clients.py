"""Real SSE and WebSocket clients for tests, each reading in a thread of its own."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
from websockets.sync.client import connect as ws_connect

# Every SSE event and WebSocket frame the tests' clients receive, as (transport, frame), at most
# RECORD_CAP of each (transport, event type): tests/test_asyncapi.py checks them against the
# AsyncAPI document at the end of the run (the test conftest.py orders last).
RECORDED: list[tuple[str, dict]] = []
RECORD_CAP = 300
_recorded_counts: dict[tuple[str, str], int] = {}
_record_lock = threading.Lock()


def record(transport: str, frame: dict) -> None:
    key = (transport, str(frame.get("event")))
    with _record_lock:
        count = _recorded_counts.get(key, 0)
        _recorded_counts[key] = count + 1
        if count < RECORD_CAP:
            RECORDED.append((transport, json.loads(json.dumps(frame))))


class _Collector:
    def __init__(self):
        self.events: list[dict] = []
        self.lock = threading.Condition()
        self.closed = False
        self.error: BaseException | None = None
        self.opened = threading.Event()

    def add(self, event: dict) -> None:
        with self.lock:
            event["received_at"] = time.monotonic()
            self.events.append(event)
            self.lock.notify_all()

    def wait_until(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(min(remaining, 0.2))
        return True

    def of_type(self, kind: str) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e.get("event") == kind]

    def comments(self) -> list[dict]:
        return self.of_type("comment")

    def comment_ids(self) -> list[int]:
        return [e["data"]["id"] for e in self.comments()]

    def wait_for_comments(self, count: int, timeout: float = 10.0) -> bool:
        return self.wait_until(lambda c: len(c.comments()) >= count, timeout)

    @property
    def last_id(self) -> str | None:
        with self.lock:
            ids = [e["id"] for e in self.events if e.get("id")]
        return ids[-1] if ids else None


class SSEClient(_Collector):
    """GET <url> with Accept: text/event-stream; parses frames as they come.

    Plain http.client over a socket this class can shut down, so close()
    returns at once even while the reader thread is blocked.
    """

    def __init__(self, url: str, last_event_id: str | None = None, headers: dict | None = None):
        super().__init__()
        self.url = url
        self.headers = {"Accept": "text/event-stream", **(headers or {})}
        if last_event_id:
            self.headers["Last-Event-ID"] = last_event_id
        self.status: int | None = None
        self.response_headers: dict = {}
        self.raw_comments: list[str] = []  # ": ping" and other comment lines
        self.retry: int | None = None
        self.body = b""
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._conn.request("GET", self._path, headers=self.headers)
            response = self._conn.getresponse()
            self.status = response.status
            self.response_headers = {k.lower(): v for k, v in response.getheaders()}
            self._conn.sock.settimeout(None)
            self.opened.set()
            if response.status != 200:
                self.body = response.read()
                return
            event: dict = {}
            data_lines: list[str] = []
            while not self._stop.is_set():
                raw = response.readline()
                if not raw:
                    return
                line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
                if line == "":
                    if data_lines or event:
                        event["data"] = json.loads("\n".join(data_lines)) if data_lines else None
                        record("sse", event)
                        self.add(event)
                    event, data_lines = {}, []
                    continue
                if line.startswith(":"):
                    if line.strip(": "):
                        self.raw_comments.append(line)
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    data_lines.append(value)
                elif field == "id":
                    event["id"] = value
                elif field == "event":
                    event["event"] = value
                elif field == "retry":
                    self.retry = int(value)
        except BaseException as exc:  # noqa: BLE001
            if not self._stop.is_set():
                self.error = exc
        finally:
            with self.lock:
                self.closed = True
                self.lock.notify_all()
            self.opened.set()

    def wait_open(self, timeout: float = 10.0) -> SSEClient:
        assert self.opened.wait(timeout), "stream did not open"
        return self

    def close(self) -> None:
        self._stop.set()
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conn.close()
        self.thread.join(5)


class WSClient(_Collector):
    def __init__(self, url: str, origin: str | None = None):
        super().__init__()
        parts = urlsplit(url)
        self.ws = ws_connect(url, origin=origin or f"http://{parts.hostname}:{parts.port}", open_timeout=10)
        self.opened.set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for message in self.ws:
                frame = json.loads(message)
                record("ws", frame)
                self.add(frame)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
        finally:
            with self.lock:
                self.closed = True
                self.lock.notify_all()

    def send(self, payload: dict) -> None:
        self.ws.send(json.dumps(payload))

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
        self.thread.join(5)


class StalledReader:
    """Opens an SSE stream and then never reads: its socket buffers fill up."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((parts.hostname, parts.port))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )

    def is_closed_by_server(self, timeout: float = 10.0) -> bool:
        """Drain what is buffered and see whether the server ended the connection."""
        self.sock.settimeout(0.5)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return True  # reset
            if chunk == b"":
                return True
        return False

    def close(self) -> None:
        self.sock.close()


class Poster:
    """Posts comments through a gateway's REST API with a user's token."""

    def __init__(self, base_url: str, token: str):
        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=10)

    def post(self, video_id: int, text: str) -> dict:
        r = self.client.post(f"/api/v1/videos/{video_id}/comments/", json={"text": text})
        assert r.status_code == 201, r.text
        return r.json()

    def delete(self, comment_id: int) -> None:
        r = self.client.delete(f"/api/v1/comments/{comment_id}/")
        assert r.status_code == 204, r.text

    def close(self) -> None:
        self.client.close()


class ResumingSSEClient(_Collector):
    """An SSE client that behaves like EventSource: when the stream ends or
    fails it reconnects (to the next of `urls`, round robin) with the last id
    it saw, until close(). Counts its reconnects."""

    def __init__(self, urls: list[str], retry_delay: float = 0.2):
        super().__init__()
        self.urls = urls
        self.retry_delay = retry_delay
        self.reconnects = 0
        self.failed_connects = 0
        self._stop = threading.Event()
        self._current: SSEClient | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            url = self.urls[index % len(self.urls)]
            client = SSEClient(url, last_event_id=self.last_id)
            self._current = client
            client.opened.wait(10)
            if client.status == 200:
                self.opened.set()
                seen = 0
                while not self._stop.is_set():
                    client.wait_until(lambda c, seen=seen: len(c.events) > seen or c.closed, 0.5)
                    with client.lock:
                        fresh = client.events[seen:]
                        seen = len(client.events)
                        ended = client.closed and seen == len(client.events)
                    for event in fresh:
                        self.add(dict(event))
                    if ended:
                        break
            else:
                self.failed_connects += 1
            client.close()
            if self._stop.is_set():
                break
            self.reconnects += 1
            index += 1
            self._stop.wait(self.retry_delay)

    def close(self) -> None:
        self._stop.set()
        if self._current is not None:
            self._current.close()
        self.thread.join(10)
