"""Far-behind resume: a client thousands of events behind catches up page by page.

The stream is trimmed far below the client's position by the write path's own
MAXLEN (made small here), so most of the catch-up comes from the database and
the rest from the stream. Real gateways (uvicorn and Daphne), SSE and
WebSocket; every client must get exactly the events after its position, once,
in order, while the gateway's memory stays bounded and its live viewers keep
getting new comments on time.
"""

from __future__ import annotations

import http.client
import itertools
import json
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
from rest_framework.authtoken.models import Token

from comments import services
from comments.models import Comment
from tests.base import alice, staff, video
from tests.realtime_clients import Poster, SSEClient, WSClient

TEXT = "y" * 390  # with the JSON around it, ~0.5 KB per frame
SERVERS = ["uvicorn", "daphne"]


_seeded = itertools.count()


def seed(video, author, count: int, batch: int = 500) -> list[Comment]:
    """`count` comments through the write path, in group-commit batches."""
    posted: list[Comment] = []
    for start in range(0, count, batch):
        drafts = [services.Draft(author, f"{next(_seeded)} {TEXT}") for _ in range(start, min(count, start + batch))]
        for outcome in services.post_comments(video, drafts):
            assert isinstance(outcome, services.PostResult), outcome
            posted.append(outcome.comment)
    return posted


def expected_after(video, anchor: Comment, removed: list[Comment]) -> list[tuple[str, int]]:
    """What a client resuming after `anchor` must get, in stream order: the
    visible comments after it and the removals of comments up to it (a
    removed later comment is not shown at all)."""
    rows = Comment.objects.in_stream().filter(video=video)
    found = [
        (c.position, "comment", c.pk) for c in rows.filter(position__gt=anchor.position, status=Comment.Status.VISIBLE)
    ]
    for comment in removed:
        comment.refresh_from_db()
        if comment.position <= anchor.position and comment.status_position > anchor.position:
            found.append((comment.status_position, "comment.removed", comment.pk))
    return [(kind, pk) for _, kind, pk in sorted(found)]


def received(client) -> list[tuple[str, int]]:
    with client.lock:
        events = list(client.events)
    return [(e["event"], e["data"]["id"]) for e in events if e.get("event") in ("comment", "comment.removed")]


def wait_for(client, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(received(client)) >= count or client.closed:
            return len(received(client)) >= count
        time.sleep(0.25)
    return False


def vm_kib(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field_name} for {pid}")


@dataclass
class RssWatch:
    """The gateway's resident memory: before, and its peak since (VmHWM, reset first)."""

    pid: int
    before: int = 0
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssWatch:
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as refs:
                refs.write("5")  # reset the peak to the current RSS
        except OSError:
            pass
        self.before = vm_kib(self.pid, "VmRSS")
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, vm_kib(self.pid, "VmRSS"))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, vm_kib(self.pid, "VmHWM"))

    @property
    def growth_mib(self) -> float:
        return round(max(0, self.peak - self.before) / 1024, 1)


class LivePoster:
    """Posts a comment every `interval` seconds through the gateway and
    measures how long the live viewer takes to get each one."""

    def __init__(self, gateway, video, author, viewer: SSEClient, interval: float = 0.25):
        self.poster = Poster(gateway.base, Token.objects.get_or_create(user=author)[0].key)
        self.video, self.viewer, self.interval = video, viewer, interval
        self.posted: list[dict] = []
        self.latencies: list[float] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                sent = time.monotonic()
                comment = self.poster.post(self.video.pk, f"live {len(self.posted)}")
                self.posted.append(comment)
                arrived = self.viewer.wait_until(lambda c, pk=comment["id"]: _has(c, pk), timeout=10)
                self.latencies.append(time.monotonic() - sent if arrived else float("inf"))
                self._stop.wait(self.interval)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.errors.append(exc)

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(15)
            self.poster.close()
        assert not self.errors, self.errors


def _has(client, comment_id: int) -> bool:
    return any(e.get("event") == "comment" and e["data"]["id"] == comment_id for e in reversed(client.events))


def stream_url(gateway, video) -> str:
    return gateway.url(f"/api/v1/videos/{video.pk}/stream")


def far_behind(video, alice, staff, count: int) -> tuple[Comment, list[Comment]]:
    """An anchor, then `count` comments; in the middle an older comment is
    removed (its removal trimmed from the stream: the database replays it)
    and a newer one too (never shown to a client resuming at the anchor).
    Returns the anchor and the two removed comments."""
    older = seed(video, alice, 1)
    anchor = seed(video, alice, 1)[0]
    posted = seed(video, alice, count // 2)
    services.moderate_comment(older[0], staff, "remove")
    services.moderate_comment(posted[10], staff, "remove")
    seed(video, alice, count - count // 2)
    return anchor, [older[0], posted[10]]


def resume_clients(gateway, video, anchor: Comment, sse: int, ws: int) -> list:
    clients: list = [SSEClient(stream_url(gateway, video), last_event_id=anchor.cursor) for _ in range(sse)]
    url = gateway.ws_url(f"/ws/videos/{video.pk}/?last_event_id={anchor.cursor}")
    clients += [WSClient(url) for _ in range(ws)]
    return clients


class BusyWriter:
    """Posts batches of comments through the write path (in this process)
    as fast as it can, until stopped: a busy video."""

    def __init__(self, video, author, batch: int = 10):
        self.video, self.author, self.batch = video, author, batch
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self._stop.wait(0.02):
                self.count += len(seed(self.video, self.author, self.batch))
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


@dataclass
class CatchUp:
    rss: RssWatch
    seconds: float  # until every client had the history
    events: int  # the history each client caught up
    latencies: list[float]  # of the live viewer, one per comment posted meanwhile


def run_catch_up(gateways, video, alice, staff, settings, server, count, sse, ws, busy=False, **env) -> CatchUp:
    """`sse` + `ws` clients resume `count` comments behind at once, while a
    live viewer of the same gateway gets a comment posted every 0.25 s (and,
    if `busy`, comments are written as fast as the write path takes them);
    every client must get exactly its events, once, in order."""
    settings.STREAM_MAXLEN = 200  # the write path trims the stream far below the clients
    gateway = gateways.start(server=server, **env)
    anchor, removed = far_behind(video, alice, staff, count)
    viewer = SSEClient(stream_url(gateway, video)).wait_open()
    assert viewer.wait_until(lambda c: c.retry is not None, 10)
    live = LivePoster(gateway, video, alice, viewer)
    writer = None
    clients: list = []
    try:
        time.sleep(0.6)
        with RssWatch(gateway.process.pid) as rss:
            started = time.monotonic()
            writer = BusyWriter(video, alice) if busy else None
            clients = resume_clients(gateway, video, anchor, sse, ws)
            history = expected_after(video, anchor, removed)
            for client in clients:
                assert wait_for(client, len(history), timeout=300), (len(received(client)), len(history), client.error)
            seconds = time.monotonic() - started
        if writer is not None:
            writer.stop()
            assert writer.count > 100  # many more than the live buffer (REALTIME_BUFFER_EVENTS) holds
        live.stop()
        expected = expected_after(video, anchor, removed)  # with what was posted meanwhile
        assert ("comment", anchor.pk) not in expected and len(expected) >= count
        for client in clients:
            assert wait_for(client, len(expected), timeout=15), (len(received(client)), len(expected))
        time.sleep(0.3)  # nothing more may arrive
        for client in clients:
            assert received(client) == expected  # exactly once, in order
    finally:
        if writer is not None:
            writer.stop()
        live.stop()
        for client in [*clients, viewer]:
            client.close()
    return CatchUp(rss, seconds, len(history), live.latencies)


@pytest.mark.parametrize("server", SERVERS)
def test_it_catches_up_far_behind_clients_exactly_once_while_live_viewers_stay_on_time(
    gateways, video, alice, staff, settings, server
):
    # 20,000 comments of ~0.5 KB: 9 MiB of catch-up per client, in pages of 500.
    run = run_catch_up(gateways, video, alice, staff, settings, server, 20_000, sse=1, ws=1)
    assert run.events > 20_000
    # Read as one body the two catch-ups grew the gateway by ~120 MiB; in
    # pages it holds a page or two per client at a time.
    assert run.rss.growth_mib < 40, run.rss.growth_mib
    assert run.latencies and max(run.latencies) < 2.0, run.latencies


@pytest.mark.parametrize("server", SERVERS)
def test_it_finishes_a_catch_up_on_a_busy_video(gateways, video, alice, staff, settings, server):
    # Comments keep arriving during the catch-up, far more than the live
    # buffer allows: a catching-up connection keeps none of them, never
    # overflows, and pages on until it reaches what the hub delivered.
    run_catch_up(
        gateways,
        video,
        alice,
        staff,
        settings,
        server,
        3000,
        sse=1,
        ws=1,
        busy=True,
        REALTIME_CATCHUP_PAGE=50,
        REALTIME_BUFFER_EVENTS=20,
    )


class SlowSSE:
    """A resume read through a small receive buffer, as far as the test asks."""

    def __init__(self, url: str, last_event_id: str):
        host, _, rest = url.removeprefix("http://").partition("/")
        hostname, _, port = host.partition(":")
        self.conn = http.client.HTTPConnection(hostname, int(port), timeout=30)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(30)
        self.sock.connect((hostname, int(port)))
        self.conn.sock = self.sock
        self.conn.request("GET", "/" + rest, headers={"Accept": "text/event-stream", "Last-Event-ID": last_event_id})
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        self.retry: int | None = None

    def read(self, count: int | None = None) -> list[dict]:
        """The next `count` events (all until the end of the response if None)."""
        events: list[dict] = []
        event: dict = {}
        while count is None or len(events) < count:
            raw = self.response.readline()
            if not raw:
                break
            line = raw.decode().rstrip("\n")
            if not line:
                if "data" in event:
                    events.append(event)
                event = {}
            elif line.startswith("retry: "):
                self.retry = int(line.partition(": ")[2])
            elif line.startswith(("id:", "event:", "data:")):
                name, _, value = line.partition(": ")
                event[name.rstrip(":")] = json.loads(value) if name == "data" else value
        return events

    def cut(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


@pytest.mark.parametrize("server", SERVERS)
def test_it_resumes_a_catch_up_cut_midway_from_the_last_id_received(gateways, video, alice, staff, settings, server):
    settings.STREAM_MAXLEN = 200
    gateway = gateways.start(server=server, REALTIME_CATCHUP_PAGE=100, REALTIME_SOCKET_SNDBUF=16384)
    anchor, removed = far_behind(video, alice, staff, 3000)
    cut_client = SlowSSE(stream_url(gateway, video), anchor.cursor)
    first = cut_client.read(700)
    cut_client.cut()
    got = [(e["event"], e["data"]["id"]) for e in first]
    assert got == expected_after(video, anchor, removed)[:700]
    cut = Comment.objects.get(pk=got[-1][1])
    rest = SSEClient(stream_url(gateway, video), last_event_id=first[-1]["id"]).wait_open()
    expected = expected_after(video, cut, removed)
    assert wait_for(rest, len(expected), timeout=60), (len(received(rest)), len(expected))
    time.sleep(0.3)
    # More than the sockets can hold was left: the first connection was cut mid catch-up.
    assert len(expected) > 1000
    assert received(rest) == expected
    rest.close()


@pytest.mark.faults
@pytest.mark.parametrize("server", SERVERS)
def test_it_measures_a_far_behind_resume(gateways, video, alice, staff, settings, server, fault_figures):
    run = run_catch_up(gateways, video, alice, staff, settings, server, 100_000, sse=1, ws=0)
    assert run.rss.growth_mib < 60, run.rss.growth_mib
    fault_figures(
        f"Far-behind resume ({server}): one SSE client 100,000 comments behind, stream trimmed to 200",
        catch_up_figures(server, 1, run),
    )


@pytest.mark.faults
@pytest.mark.parametrize("server", SERVERS)
def test_it_measures_concurrent_far_behind_resumes(gateways, video, alice, staff, settings, server, fault_figures):
    run = run_catch_up(gateways, video, alice, staff, settings, server, 20_000, sse=4, ws=4)
    assert run.rss.growth_mib < 80, run.rss.growth_mib
    assert max(run.latencies) < 2.0, run.latencies
    fault_figures(
        f"Concurrent-resume load ({server}): 4 SSE + 4 WebSocket clients 20,000 comments behind each",
        catch_up_figures(server, 8, run),
    )


def catch_up_figures(server: str, clients: int, run: CatchUp) -> dict:
    return {
        "catch_up": True,
        "server": server,
        "clients": clients,
        "events_per_client": run.events,
        "catch_up_mib_per_client": round(run.events * 0.5 / 1024, 1),
        "seconds": round(run.seconds, 1),
        "peak_rss_growth_mib": run.rss.growth_mib,
        "live_latency_max_ms": round(max(run.latencies) * 1000),
        "lost": 0,
        "duplicated": 0,
    }


@pytest.mark.parametrize("server", SERVERS)
def test_it_ends_a_catch_up_cleanly_on_sigterm(gateways, video, alice, staff, settings, server):
    settings.STREAM_MAXLEN = 200
    gateway = gateways.start(server=server, REALTIME_CATCHUP_PAGE=100, REALTIME_SOCKET_SNDBUF=16384)
    anchor, removed = far_behind(video, alice, staff, 3000)
    client = SlowSSE(stream_url(gateway, video), anchor.cursor)
    first = client.read(300)  # then it stops reading: the catch-up waits for it to take the page
    time.sleep(0.5)
    gateway.process.send_signal(signal.SIGTERM)
    rest = client.read()  # what was written before the drain, then its `retry:` and the end
    assert client.retry == 500
    got = [(e["event"], e["data"]["id"]) for e in first + rest]
    expected = expected_after(video, anchor, removed)
    assert 300 <= len(got) < len(expected)  # ended mid catch-up
    assert got == expected[: len(got)]
    gateway.process.wait(15)


def test_it_pages_a_resume_exactly_whatever_the_page_size(transactional_db, video, alice, staff, settings, redis):
    from dispatcher import backlog

    settings.STREAM_MAXLEN = 10
    older = seed(video, alice, 3)
    anchor = seed(video, alice, 1)[0]
    newer = seed(video, alice, 20)
    services.moderate_comment(older[0], staff, "remove")
    services.moderate_comment(older[1], staff, "remove")
    services.moderate_comment(older[1], staff, "restore")  # announced again, at its new position
    services.moderate_comment(newer[3], staff, "remove")
    seed(video, alice, 30)  # the stream now starts far after the anchor
    whole = backlog.resume_page(video.pk, anchor.cursor, 10**6)
    assert not whole.more
    kinds = [(e.type, e.comment_id or json.loads(e.data)["id"]) for e in whole.events]
    assert ("comment.removed", older[0].pk) in kinds and ("comment", older[1].pk) in kinds
    assert all(pk != newer[3].pk for _, pk in kinds)
    assert [e.id for e in whole.events] == sorted(
        (e.id for e in whole.events), key=lambda i: tuple(map(int, i.split("-")))
    )
    for size in (1, 2, 3, 7, 50):
        pages: list = []
        after = anchor.cursor
        while True:
            page = backlog.resume_page(video.pk, after, size, since=anchor.cursor)
            assert len(page.events) <= 2 * size
            pages.extend(page.events)
            if not page.more and page.last_id == after:
                break
            after = page.last_id
        assert pages == whole.events, size
