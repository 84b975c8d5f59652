"""Gapless resume: Last-Event-ID (SSE), last_event_id (WebSocket), after= (REST long-poll)."""

import time

import httpx
import pytest
from rest_framework.authtoken.models import Token

from comments import hotstore
from tests.base import alice, video
from tests.realtime_clients import Poster, SSEClient, WSClient


def stream_url(gateway, video, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return gateway.url(f"/api/v1/videos/{video.pk}/stream") + (f"?{qs}" if qs else "")


def setup(gateways, video, alice):
    gateway = gateways.start()
    poster = Poster(gateway.base, Token.objects.create(user=alice).key)
    return gateway, poster


def test_it_resumes_sse_with_last_event_id(gateways, video, alice):
    gateway, poster = setup(gateways, video, alice)
    first = SSEClient(stream_url(gateway, video)).wait_open()
    poster.post(video.pk, "before the drop")
    assert first.wait_for_comments(1)
    last_seen = first.last_id
    first.close()
    missed = [poster.post(video.pk, f"missed {i}") for i in range(20)]
    again = SSEClient(stream_url(gateway, video), last_event_id=last_seen).wait_open()
    assert again.wait_for_comments(20)
    time.sleep(0.3)  # nothing more may arrive
    assert again.comment_ids() == [c["id"] for c in missed]
    live = poster.post(video.pk, "after the resume")
    assert again.wait_for_comments(21)
    assert again.comment_ids()[-1] == live["id"]
    again.close()


def test_it_resumes_sse_with_the_query_parameter(gateways, video, alice):
    gateway, poster = setup(gateways, video, alice)
    anchor = poster.post(video.pk, "anchor")
    missed = [poster.post(video.pk, f"missed {i}") for i in range(3)]
    client = SSEClient(stream_url(gateway, video, last_event_id=anchor["cursor"])).wait_open()
    assert client.wait_for_comments(3)
    assert client.comment_ids() == [c["id"] for c in missed]
    client.close()


def test_it_resumes_websocket_with_last_event_id(gateways, video, alice):
    gateway, poster = setup(gateways, video, alice)
    anchor = poster.post(video.pk, "anchor")
    missed = [poster.post(video.pk, f"missed {i}") for i in range(20)]
    client = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/?last_event_id={anchor['cursor']}"))
    assert client.wait_for_comments(20)
    time.sleep(0.3)
    assert client.comment_ids() == [c["id"] for c in missed]
    assert [e["id"] for e in client.comments()] == [c["cursor"] for c in missed]
    client.close()


@pytest.mark.faults
def test_it_resumes_from_the_database_once_the_stream_is_trimmed(gateways, video, alice, redis, fault_figures):
    gateway, poster = setup(gateways, video, alice)
    anchor = poster.post(video.pk, "anchor")
    missed = [poster.post(video.pk, f"missed {i}") for i in range(20)]
    # Keep only the newest 5 entries: the first 15 missed ones now live only in the DB.
    redis.xtrim(hotstore.stream_key(video.pk), maxlen=5, approximate=False)
    assert redis.xlen(hotstore.stream_key(video.pk)) == 5
    delivered = 0
    for client in (
        SSEClient(stream_url(gateway, video), last_event_id=anchor["cursor"]).wait_open(),
        WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/?last_event_id={anchor['cursor']}")),
    ):
        assert client.wait_for_comments(20)
        time.sleep(0.2)
        assert client.comment_ids() == [c["id"] for c in missed]
        assert [e["id"] for e in client.comments()] == [c["cursor"] for c in missed]
        delivered += len(client.comment_ids())
        client.close()
    fault_figures(
        "Stream trimmed below the clients' cursor (15 of 20 missed comments only in the database)",
        {"clients": 2, "acknowledged": len(missed), "delivered": delivered, "lost": 0, "duplicated": 0},
    )


def test_it_resumes_from_the_database_when_redis_lost_the_stream(gateways, video, alice, redis):
    gateway, poster = setup(gateways, video, alice)
    anchor = poster.post(video.pk, "anchor")
    missed = [poster.post(video.pk, f"missed {i}") for i in range(5)]
    redis.delete(hotstore.stream_key(video.pk))
    client = SSEClient(stream_url(gateway, video), last_event_id=anchor["cursor"]).wait_open()
    assert client.wait_for_comments(5)
    assert client.comment_ids() == [c["id"] for c in missed]
    client.close()


def test_it_long_polls_until_a_comment_arrives(gateways, video, alice):
    gateway, poster = setup(gateways, video, alice)
    anchor = poster.post(video.pk, "anchor")
    url = gateway.url(f"/api/v1/videos/{video.pk}/comments/?after={anchor['cursor']}&wait=10")
    import threading

    result = {}

    def poll():
        started = time.monotonic()
        result["response"] = httpx.get(url, timeout=20)
        result["took"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()  # still waiting: nothing after the cursor yet
    posted = poster.post(video.pk, "wake up")
    thread.join(15)
    body = result["response"].json()
    assert result["response"].status_code == 200
    assert [c["id"] for c in body["results"]] == [posted["id"]]
    assert body["cursor"] == posted["cursor"]
    assert result["took"] < 9  # woke up on the comment, not the timeout


def test_it_long_polls_the_20_missed_comments_in_order(gateways, video, alice):
    gateway, poster = setup(gateways, video, alice)
    anchor = poster.post(video.pk, "anchor")
    missed = [poster.post(video.pk, f"missed {i}") for i in range(20)]
    r = httpx.get(gateway.url(f"/api/v1/videos/{video.pk}/comments/?after={anchor['cursor']}&wait=5"), timeout=10)
    assert [c["id"] for c in r.json()["results"]] == [c["id"] for c in missed]


def test_it_returns_an_empty_page_when_the_wait_ends(gateways, video, alice):
    gateway, poster = setup(gateways, video, alice)
    anchor = poster.post(video.pk, "anchor")
    started = time.monotonic()
    r = httpx.get(gateway.url(f"/api/v1/videos/{video.pk}/comments/?after={anchor['cursor']}&wait=1"), timeout=10)
    assert r.status_code == 200
    assert r.json()["results"] == []
    assert r.json()["cursor"] == anchor["cursor"]
    assert time.monotonic() - started >= 0.9


def test_it_rejects_bad_wait_values(gateways, video, alice):
    gateway, poster = setup(gateways, video, alice)
    base = gateway.url(f"/api/v1/videos/{video.pk}/comments/")
    for query in ("?after=1-0&wait=0", "?after=1-0&wait=31", "?after=1-0&wait=x", "?wait=5"):
        r = httpx.get(base + query, timeout=5)
        assert r.status_code == 400, query
        assert r.json()["error"]["code"] in ("invalid_wait", "missing_after")


def test_a_long_poll_counts_once_against_the_anonymous_read_limit(gateways, video, alice):
    # Clients come through a proxy (NUM_PROXIES=1) from a public address, so the
    # per-IP limit applies (loopback itself is exempt).
    gateway = gateways.start(NUM_PROXIES="1", THROTTLE_ANON_RATE="3/min")
    anchor = Poster(gateway.base, Token.objects.create(user=alice).key).post(video.pk, "anchor")
    headers = {"X-Forwarded-For": "203.0.113.5"}
    base = gateway.url(f"/api/v1/videos/{video.pk}/comments/")
    # Nothing new: the poll looks, waits, looks again at the end -- one request.
    r = httpx.get(f"{base}?after={anchor['cursor']}&wait=1", headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["results"] == []
    assert httpx.get(base, headers=headers, timeout=5).status_code == 200
    assert httpx.get(base, headers=headers, timeout=5).status_code == 200
    assert httpx.get(base, headers=headers, timeout=5).status_code == 429
