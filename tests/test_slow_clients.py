"""A client that stops reading is cut off without delaying the others (invariant 6)."""

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
