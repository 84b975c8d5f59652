"""Stock third-party clients run the resume scenario against real gateways:
httpx-sse and Node's `eventsource` for SSE, Python's `websockets` and Node's
`ws` (no Origin, as native apps connect) for the WebSocket.

Each: connect, receive live comments, lose the connection, miss comments
posted meanwhile, reconnect with the client's own resume (the id it kept, as
Last-Event-ID or `?last_event_id=`), and receive exactly the missed events --
none lost, none twice, in order -- then live ones again. SSE clients never see
an event the server did not send: no empty or unnamed `message` (what a
`retry:`-only or ping-only block made httpx-sse yield).
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from tests.base import alice, video  # fixtures
from tests.realtime_clients import Poster

pytestmark = [pytest.mark.processes]

SERVERS = ["uvicorn", "daphne"]
NODE_DIR = Path(__file__).resolve().parent / "node"
EVENTS = {"comment", "comment.removed", "comment.held", "report.created", "viewers", "video.state", "video.settings"}
# Short heartbeats, so pings fall between the events of every phase; a short
# retry, so a client that honours `retry:` reconnects well before EventSource's
# default of 3 s.
GATEWAY_ENV = {"REALTIME_HEARTBEAT_SECONDS": "0.1", "REALTIME_RETRY_MS": "300"}
BEFORE, MISSED = 3, 5


class Scenario:
    """The comments of one run and what a client must have received of them."""

    def __init__(self, gateway, video, user):
        self.video = video
        self.poster = Poster(gateway.base, Token.objects.create(user=user).key)
        self.before: list[dict] = []
        self.missed: list[dict] = []
        self.live: list[dict] = []

    def post(self, into: list[dict], count: int, tag: str) -> None:
        into += [self.poster.post(self.video.pk, f"{tag} {len(into) + n}") for n in range(count)]

    @staticmethod
    def cursors(comments: list[dict]) -> list[str]:
        return [c["cursor"] for c in comments]


def in_stream(events: list[tuple[str, str, object]]) -> list[tuple[str, str, int]]:
    """(type, id, comment id) of the events that carry a stream position
    (`viewers` has none: a client may show it with the last id seen)."""
    return [(kind, id, data["id"]) for kind, id, data in events if id and kind != "viewers"]


def expected(comments: list[dict]) -> list[tuple[str, str, int]]:
    return [("comment", c["cursor"], c["id"]) for c in comments]


# -- httpx-sse --------------------------------------------------------------------


class Tap:
    """The response as httpx-sse reads it, with the text it parses seen on the
    way (to know when pings have gone by); the parser is httpx-sse's own."""

    def __init__(self, response: httpx.Response, on_text: Callable[[str], None]):
        self.response = response
        self.headers = response.headers
        self.on_text = on_text

    def iter_text(self) -> Iterator[str]:
        for text in self.response.iter_text():
            self.on_text(text)
            yield text


def read_until(source: Iterator[ServerSentEvent], seen: list[ServerSentEvent], done: Callable[[], bool]) -> None:
    for sse in source:
        seen.append(sse)
        if done():
            return
    raise AssertionError(f"the stream ended first: {seen}")


def comment_ids(seen: list[ServerSentEvent]) -> list[int]:
    return [json.loads(sse.data)["id"] for sse in seen if sse.event == "comment"]


@pytest.mark.parametrize("server", SERVERS)
def test_it_resumes_httpx_sse_with_exactly_the_missed_events(gateways, video, alice, server):
    gateway = gateways.start(server, **GATEWAY_ENV)
    run = Scenario(gateway, video, alice)
    url = gateway.url(f"/api/v1/videos/{video.pk}/stream")
    first: list[ServerSentEvent] = []
    resumed: list[ServerSentEvent] = []
    text_after_missed: list[str] = []

    def after_two_pings_post_live(text: str) -> None:
        # Once every missed event is in, two heartbeats (each a comment after
        # an id: line) go by before the live comment is posted.
        if len(comment_ids(resumed)) == MISSED and not run.live:
            text_after_missed.append(text)
            if "".join(text_after_missed).count(": ping") >= 2:
                run.post(run.live, 1, "live")

    with httpx.Client(timeout=10) as client:
        with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
            assert response.status_code == 200
            source = EventSource(response).iter_sse()
            run.post(run.before, BEFORE, "before")
            read_until(source, first, lambda: len(comment_ids(first)) == BEFORE)
        last_id = first[-1].id  # httpx-sse's last event id: the client's own resume
        run.post(run.missed, MISSED, "missed")  # while the connection is cut
        headers = {"Accept": "text/event-stream", "Last-Event-ID": last_id}
        with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            source = EventSource(Tap(response, after_two_pings_post_live)).iter_sse()
            read_until(source, resumed, lambda: len(comment_ids(resumed)) == MISSED + 1)

    # Only events the server sent: named, with data (no empty `message` for a
    # retry: or a ping), and the retry value arrives with a real event.
    for sse in first + resumed:
        assert sse.event in EVENTS and sse.data, sse
    assert first[0].retry == 300
    assert last_id == run.before[-1]["cursor"]
    assert comment_ids(first) == [c["id"] for c in run.before]
    got = in_stream([(sse.event, sse.id, json.loads(sse.data)) for sse in resumed])
    assert got == expected(run.missed + run.live)


# -- websockets (Python) ------------------------------------------------------------


def ws_frames(ws, into: list[dict], done: Callable[[], bool]) -> None:
    while not done():
        frame = json.loads(ws.recv(timeout=10))
        if frame["event"] != "ping":
            into.append(frame)


def ws_comment_ids(frames: list[dict]) -> list[int]:
    return [f["data"]["id"] for f in frames if f["event"] == "comment"]


@pytest.mark.parametrize("server", SERVERS)
def test_it_resumes_python_websockets_with_exactly_the_missed_events(gateways, video, alice, server):
    gateway = gateways.start(server, **GATEWAY_ENV)
    run = Scenario(gateway, video, alice)
    url = gateway.ws_url(f"/ws/videos/{video.pk}/")
    first: list[dict] = []
    resumed: list[dict] = []
    with connect(url, open_timeout=10) as ws:
        assert "Origin" not in ws.request.headers  # a native client
        run.post(run.before, BEFORE, "before")
        ws_frames(ws, first, lambda: len(ws_comment_ids(first)) == BEFORE)
    last_id = [f["id"] for f in first if f.get("id")][-1]
    run.post(run.missed, MISSED, "missed")
    with connect(f"{url}?last_event_id={last_id}", open_timeout=10) as ws:
        ws_frames(ws, resumed, lambda: len(ws_comment_ids(resumed)) == MISSED)
        run.post(run.live, 1, "live")
        ws_frames(ws, resumed, lambda: len(ws_comment_ids(resumed)) == MISSED + 1)
    assert ws_comment_ids(first) == [c["id"] for c in run.before]
    assert in_stream([(f["event"], f.get("id", ""), f["data"]) for f in resumed]) == expected(run.missed + run.live)


# -- Node: eventsource and ws ---------------------------------------------------------


def node_clients_ready() -> None:
    """Node and the pinned packages of tests/node (`npm ci` on first use, as CI does)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node or npm is not installed")
    if not all((NODE_DIR / "node_modules" / name).is_dir() for name in ("eventsource", "ws")):
        installed = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, capture_output=True, timeout=300
        )
        assert installed.returncode == 0, installed.stderr


class NodeClient:
    """tests/node/third_party_clients.mjs: one JSON line per event or step."""

    def __init__(self, mode: str, url: str):
        self.process = subprocess.Popen(
            ["node", "third_party_clients.mjs", mode, url],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self.steps: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def wait(self, done: Callable[[], bool]) -> None:
        while not done():
            try:
                message = self.lines.get(timeout=15)
            except queue.Empty:
                raise AssertionError(f"node client stalled: {self.steps} {self.events}") from None
            if message is None or "error" in message:
                assert self.process.stderr is not None
                raise AssertionError(f"node client failed: {message} {self.process.stderr.read()}")
            (self.events if "event" in message else self.steps).append(message)

    def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def comment_ids(self, since: int = 0) -> list[int]:
        return [e["data"]["id"] for e in self.events[since:] if e["event"] == "comment"]

    def close(self) -> None:
        try:
            self.command("exit")
            self.process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(10)


def run_node_scenario(gateway, video, alice, mode: str, url: str) -> tuple[Scenario, NodeClient, list[dict]]:
    run = Scenario(gateway, video, alice)
    client = NodeClient(mode, url)
    try:
        client.wait(lambda: any("open" in s for s in client.steps))
        run.post(run.before, BEFORE, "before")
        client.wait(lambda: len(client.comment_ids()) == BEFORE)
        cut_at = len(client.events)
        client.command("cut")
        client.wait(lambda: any("cut" in s for s in client.steps))
        run.post(run.missed, MISSED, "missed")
        client.command("resume")
        client.wait(lambda: len(client.comment_ids(cut_at)) == MISSED)
        run.post(run.live, 1, "live")
        client.wait(lambda: len(client.comment_ids(cut_at)) == MISSED + 1)
    finally:
        client.close()
    assert client.comment_ids()[:BEFORE] == [c["id"] for c in run.before]
    resumed = client.events[cut_at:]
    assert in_stream([(e["event"], e["id"], e["data"]) for e in resumed]) == expected(run.missed + run.live)
    (reconnect,) = [s for s in client.steps if "reconnect" in s]
    assert reconnect["last_event_id"] == run.before[-1]["cursor"]
    return run, client, resumed


@pytest.mark.parametrize("server", SERVERS)
def test_it_resumes_node_eventsource_with_exactly_the_missed_events(gateways, video, alice, server):
    node_clients_ready()
    gateway = gateways.start(server, **GATEWAY_ENV)
    url = gateway.url(f"/api/v1/videos/{video.pk}/stream")
    run, client, resumed = run_node_scenario(gateway, video, alice, "eventsource", url)
    # It reconnected by itself, after the server's retry: (300 ms, not its default 3 s).
    (reconnect,) = [s for s in client.steps if "reconnect" in s]
    assert 250 <= reconnect["delay_ms"] < 2500, reconnect
    assert all(e["event"] in EVENTS for e in client.events), client.events  # no unnamed `message`


@pytest.mark.parametrize("server", SERVERS)
def test_it_resumes_node_ws_with_exactly_the_missed_events(gateways, video, alice, server):
    node_clients_ready()
    gateway = gateways.start(server, **GATEWAY_ENV)
    _, client, _ = run_node_scenario(gateway, video, alice, "ws", gateway.ws_url(f"/ws/videos/{video.pk}/"))
    opened = [s for s in client.steps if "open" in s]
    assert [s["origin_sent"] for s in opened] == [False, False]  # a native client, both times
