"""A gateway dies: its clients resume elsewhere, its endpoint-store entries expire."""

import time

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.base import alice, video
from tests.endpoint_store import core_members, member_count
from tests.realtime_clients import Poster, SSEClient, WSClient

EXPIRY = 3  # seconds; gateways refresh their groups every EXPIRY / 3


@pytest.mark.faults
def test_it_resumes_on_another_gateway_after_a_kill(gateways, video, alice, fault_figures):
    a, b = gateways.start(), gateways.start()
    poster = Poster(b.base, Token.objects.create(user=alice).key)
    sse = SSEClient(a.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    ws = WSClient(a.ws_url(f"/ws/videos/{video.pk}/"))
    before = [poster.post(video.pk, f"before {i}") for i in range(5)]
    for client in (sse, ws):
        assert client.wait_for_comments(5)
    a.kill()  # SIGKILL: no goodbye
    for client in (sse, ws):
        assert client.wait_until(lambda c: c.closed, 10)
    during = [poster.post(video.pk, f"during {i}") for i in range(10)]
    # The clients come back through the load balancer, which now picks b.
    sse2 = SSEClient(b.url(f"/api/v1/videos/{video.pk}/stream"), last_event_id=sse.last_id).wait_open()
    ws2 = WSClient(b.ws_url(f"/ws/videos/{video.pk}/?last_event_id={ws.last_id}"))
    after = [poster.post(video.pk, f"after {i}") for i in range(5)]
    expected = [c["id"] for c in before + during + after]
    delivered = duplicated = lost = 0
    for first, second in ((sse, sse2), (ws, ws2)):
        assert second.wait_for_comments(15)
        time.sleep(0.2)
        got = first.comment_ids() + second.comment_ids()
        delivered += len(got)
        duplicated += len(got) - len(set(got))
        lost += len(set(expected) - set(got))
        assert got == expected
    fault_figures(
        "Gateway killed with SIGKILL (an SSE and a WebSocket client resume on the other gateway)",
        {"clients": 2, "acknowledged": len(expected), "delivered": delivered, "lost": lost, "duplicated": duplicated},
    )
    sse2.close()
    ws2.close()
    poster.close()


def test_it_keeps_a_live_core_gateways_groups_and_expires_a_dead_ones(gateways, video, alice, redis):
    env = {"CHANNEL_LAYER": "core", "CHANNEL_LAYER_GROUP_EXPIRY": EXPIRY}
    live, doomed = gateways.start(**env), gateways.start(**env)
    clients = [SSEClient(g.url(f"/api/v1/videos/{video.pk}/stream")).wait_open() for g in (live, doomed)]
    for client in clients:
        client.wait_until(lambda c: c.retry is not None, 5)
    live_channel = httpx.get(live.url("/gateway/stats")).json()["channel"]
    doomed_channel = httpx.get(doomed.url("/gateway/stats")).json()["channel"]
    assert core_members(redis, video.pk) == {live_channel, doomed_channel}
    doomed.kill()
    time.sleep(EXPIRY * 2.5)  # well past group_expiry: only refreshed memberships survive
    poster = Poster(live.base, Token.objects.create(user=alice).key)
    posted = poster.post(video.pk, "still here")  # group_send prunes expired members
    assert core_members(redis, video.pk) == {live_channel}
    assert clients[0].wait_for_comments(1)
    assert clients[0].comment_ids() == [posted["id"]]
    clients[0].close()
    poster.close()


def test_it_drops_a_dead_pubsub_gateway_from_the_group_at_once(gateways, video, alice, redis):
    live, doomed = gateways.start(CHANNEL_LAYER="pubsub"), gateways.start(CHANNEL_LAYER="pubsub")
    clients = [SSEClient(g.url(f"/api/v1/videos/{video.pk}/stream")).wait_open() for g in (live, doomed)]
    for client in clients:
        client.wait_until(lambda c: c.retry is not None, 5)
    assert member_count(redis, video.pk, "pubsub") == 2
    doomed.kill()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and member_count(redis, video.pk, "pubsub") != 1:
        time.sleep(0.05)
    assert member_count(redis, video.pk, "pubsub") == 1
    poster = Poster(live.base, Token.objects.create(user=alice).key)
    posted = poster.post(video.pk, "still here")
    assert clients[0].wait_for_comments(1)
    assert clients[0].comment_ids() == [posted["id"]]
    clients[0].close()
    poster.close()
