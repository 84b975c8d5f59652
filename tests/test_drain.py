"""SIGTERM drains: every open stream gets a final `retry:` and a clean end; nothing accepted is lost."""

import signal
import time

import pytest
from rest_framework.authtoken.models import Token

from tests.base import alice, video
from tests.realtime_clients import Poster, SSEClient, WSClient


@pytest.mark.faults
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_it_drains_streams_on_sigterm_and_clients_resume_elsewhere(gateways, video, alice, server, fault_figures):
    doomed, other = gateways.start(server=server), gateways.start()
    poster = Poster(other.base, Token.objects.create(user=alice).key)
    sse = [SSEClient(doomed.url(f"/api/v1/videos/{video.pk}/stream")).wait_open() for _ in range(3)]
    ws = WSClient(doomed.ws_url(f"/ws/videos/{video.pk}/"))
    before = [poster.post(video.pk, f"before {i}") for i in range(3)]
    for client in sse + [ws]:
        assert client.wait_for_comments(3)
    started = time.monotonic()
    doomed.process.send_signal(signal.SIGTERM)
    for client in sse:
        assert client.wait_until(lambda c: c.closed, 10), "stream not ended"
        assert client.retry == 500  # the final retry: line
        assert client.error is None  # a clean end of the response, not a reset
    assert ws.wait_until(lambda c: c.closed, 10)
    assert ws.ws.close_code == 4503  # unavailable here: reconnect
    drained_in = time.monotonic() - started
    assert drained_in < 5
    doomed.process.wait(15)
    during = [poster.post(video.pk, f"during {i}") for i in range(5)]
    resumed = [
        SSEClient(other.url(f"/api/v1/videos/{video.pk}/stream"), last_event_id=c.last_id).wait_open() for c in sse
    ]
    expected = [c["id"] for c in before + during]
    delivered = 0
    for first, second in zip(sse, resumed, strict=True):
        assert second.wait_for_comments(5)
        time.sleep(0.1)
        assert first.comment_ids() + second.comment_ids() == expected
        delivered += len(expected)
        second.close()
    fault_figures(
        f"SIGTERM to a {server} gateway (3 SSE clients get a final retry: and resume elsewhere)",
        {
            "clients": 3,
            "acknowledged": len(expected),
            "delivered": delivered,
            "lost": 0,
            "duplicated": 0,
            "drain_seconds": round(drained_in, 2),
        },
    )
    poster.close()
