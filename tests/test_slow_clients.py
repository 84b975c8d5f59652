"""A client that stops reading is cut off without delaying the others (invariant 6)."""

import json
import time

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.base import alice, video
from tests.realtime_clients import Poster, SSEClient, StalledReader

BIG = "x" * 480  # ~0.6 KB frames fill a stalled socket quickly


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_it_disconnects_a_stalled_reader_and_keeps_others_on_time(gateways, video, alice, server):
    gateway = gateways.start(
        server=server, REALTIME_BUFFER_BYTES=64 * 1024, REALTIME_BUFFER_EVENTS=100, REALTIME_SOCKET_SNDBUF=16384
    )
    url = gateway.url(f"/api/v1/videos/{video.pk}/stream")
    stalled = StalledReader(url)
    healthy = [SSEClient(url).wait_open() for _ in range(3)]
    for client in healthy:
        client.wait_until(lambda c: c.retry is not None, 5)
    time.sleep(0.3)
    poster = Poster(gateway.base, Token.objects.create(user=alice).key)
    sent_at = {}
    count = 600  # ~360 KB: far past the stalled socket's kernel buffers and the 64 KB bound
    for i in range(count):
        comment = poster.post(video.pk, f"{i} {BIG}")
        sent_at[comment["id"]] = time.monotonic()
    for client in healthy:
        assert client.wait_for_comments(count, timeout=30), len(client.comments())
        ids = client.comment_ids()
        assert len(ids) == len(set(ids)) == count
        latencies = [e["received_at"] - sent_at[e["data"]["id"]] for e in client.comments()]
        # Not a speed test: a stalled peer must not hold the others back for seconds.
        assert max(latencies) < 2.0, max(latencies)
    stats = httpx.get(gateway.url("/gateway/stats")).json()
    assert stats.get("overflows", 0) >= 1, stats
    assert stalled.is_closed_by_server(timeout=10)
    assert stats["videos"] == {str(video.pk): 3}
    stalled.close()
    for client in healthy:
        client.close()


def _decode_chunked_sse(raw: bytes) -> tuple[list[dict], bytes]:
    """Strictly decode an HTTP/1.1 chunked body of SSE frames: (comment events so far, undecoded rest)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep and b"transfer-encoding: chunked" in head.lower(), head
    payload = b""
    while True:
        size_line, crlf, after = body.partition(b"\r\n")
        if not crlf:
            break
        size = int(size_line, 16)  # anything but a hex size here is broken framing
        if len(after) < size + 2:
            break
        assert after[size : size + 2] == b"\r\n", after[size : size + 20]
        payload += after[:size]
        body = after[size + 2 :]
    comments = []
    for block in payload.decode().split("\n\n"):
        lines = block.split("\n")
        if "event: comment" in lines:
            data = next(line[len("data: ") :] for line in lines if line.startswith("data: "))
            comments.append(json.loads(data))
    return comments, body


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_a_reader_that_falls_behind_and_catches_up_gets_every_frame_intact_and_in_order(gateways, video, alice, server):
    # A full socket makes the gateway's write partial (Daphne: one send() takes part of a
    # chunk, Twisted keeps the rest) or pauses it (uvicorn): the framing and the order must hold.
    gateway = gateways.start(
        server=server,
        REALTIME_BUFFER_BYTES=8 * 1024 * 1024,
        REALTIME_BUFFER_EVENTS=5000,
        REALTIME_SOCKET_SNDBUF=16384,
    )
    url = gateway.url(f"/api/v1/videos/{video.pk}/stream")
    lagging = StalledReader(url)
    watcher = SSEClient(url).wait_open()
    watcher.wait_until(lambda c: c.retry is not None, 5)
    time.sleep(0.3)
    poster = Poster(gateway.base, Token.objects.create(user=alice).key)
    posted = [poster.post(video.pk, f"{i} {BIG}")["id"] for i in range(300)]  # ~200 KB, far past the buffers
    assert watcher.wait_for_comments(300, timeout=30)
    lagging.sock.settimeout(0.5)
    raw = b""
    deadline = time.monotonic() + 30
    comments: list[dict] = []
    while len(comments) < 300 and time.monotonic() < deadline:
        try:
            data = lagging.sock.recv(1 << 20)
        except TimeoutError:
            continue
        assert data, "the gateway closed the lagging reader"
        raw += data
        comments, _ = _decode_chunked_sse(raw)
    assert [c["id"] for c in comments] == posted
    stats = httpx.get(gateway.url("/gateway/stats")).json()
    assert stats.get("overflows", 0) == 0, stats
    lagging.close()
    watcher.close()
