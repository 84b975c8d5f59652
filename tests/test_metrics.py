"""GET /metrics (Prometheus text, per gateway process) and GET /readyz on real gateways."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from livecomment.server.embedded_redis import EmbeddedRedis
from tests.base import alice, video
from tests.realtime_clients import Poster, SSEClient, WSClient

pytestmark = pytest.mark.processes


def scrape(gateway) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one gateway's /metrics."""
    r = httpx.get(gateway.url("/metrics"), timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_for_metrics(gateway, predicate, what: str, timeout: float = 10.0) -> dict:
    """Scrape until predicate(samples) holds; returns those samples."""
    found = {}

    def check():
        found["samples"] = scrape(gateway)
        return predicate(found["samples"])

    wait_for(check, timeout, what)
    return found["samples"]


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_it_counts_connections_deliveries_channel_messages_and_comments(gateways, video, alice, server):
    gateway = gateways.start(server)
    before = scrape(gateway)
    assert value(before, "livecomment_open_connections", transport="sse") == 0
    assert value(before, "livecomment_open_connections", transport="ws") == 0

    sse = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/"))
    samples = wait_for_metrics(
        gateway,
        lambda s: (
            value(s, "livecomment_open_connections", transport="sse") == 1
            and value(s, "livecomment_open_connections", transport="ws") == 1
        ),
        "one SSE and one WS connection in the gauge",
    )
    assert value(samples, "livecomment_videos_watched") == 1
    info = [dict(labels) for name, labels in samples if name == "livecomment_gateway_info"]
    assert len(info) == 1 and info[0]["pid"] == str(gateway.process.pid) and info[0]["channel"]

    token = Token.objects.create(user=alice).key
    poster = Poster(gateway.base, token)
    for i in range(3):
        poster.post(video.pk, f"hello {i}")
    # Rejections, by their error code.
    r = poster.client.post(f"/api/v1/videos/{video.pk}/comments/", json={"text": "   "})
    assert r.status_code == 400
    empty_code = r.json()["error"]["code"]
    r = httpx.post(gateway.url(f"/api/v1/videos/{video.pk}/comments/"), json={"text": "anonymous"}, timeout=5)
    assert r.status_code in (401, 403)
    anon_code = r.json()["error"]["code"]
    r = poster.client.post(f"/api/v1/videos/{video.pk}/comments/", json={})
    assert r.json()["error"]["code"] == "missing_text"
    # And over the WebSocket: anonymous posting is refused there too.
    ws.send({"action": "post", "text": "from ws", "ref": "r1"})
    assert ws.wait_until(lambda c: c.of_type("error"), 5)
    ws_code = ws.of_type("error")[0]["error"]["code"]

    assert sse.wait_for_comments(3) and ws.wait_for_comments(3)
    samples = wait_for_metrics(gateway, lambda s: value(s, "livecomment_deliveries_total") >= 6, "deliveries")
    assert value(samples, "livecomment_channel_messages_sent_total") >= 3  # the publisher, once per event
    assert value(samples, "livecomment_channel_messages_received_total") >= 3  # the hub, once per event
    assert value(samples, "livecomment_comments_accepted_total", transport="api") == 3
    assert value(samples, "livecomment_comments_rejected_total", reason=empty_code, transport="api") == 1
    assert value(samples, "livecomment_comments_rejected_total", reason=anon_code, transport="api") == 1
    assert value(samples, "livecomment_comments_rejected_total", reason="missing_text", transport="api") == 1
    assert value(samples, "livecomment_comments_rejected_total", reason=ws_code, transport="ws") == 1
    assert value(samples, "livecomment_connections_opened_total") >= 2
    assert value(samples, "livecomment_gap_repairs_total") == 0
    assert value(samples, "livecomment_slow_clients_dropped_total") == 0
    # Request latency, by route name (never the raw path) and method.
    assert value(samples, "livecomment_http_request_duration_seconds_count", method="POST", route="api-comments") == 6
    assert value(samples, "livecomment_http_requests_total", method="POST", route="api-comments", status="201") == 3
    assert not any("/api/v1/videos/" in str(labels) for _, labels in samples)

    sse.close()
    ws.close()
    wait_for_metrics(
        gateway,
        lambda s: (
            value(s, "livecomment_open_connections", transport="sse") == 0
            and value(s, "livecomment_open_connections", transport="ws") == 0
        ),
        "connections to close",
    )
    poster.close()


def test_it_counts_long_polls_as_connections(gateways, video):
    gateway = gateways.start()
    url = gateway.url(f"/api/v1/videos/{video.pk}/comments/?after=0-0&wait=5")
    done = threading.Event()
    thread = threading.Thread(target=lambda: (httpx.get(url, timeout=10), done.set()), daemon=True)
    thread.start()
    wait_for(
        lambda: value(scrape(gateway), "livecomment_open_connections", transport="long_poll") == 1,
        what="the long-poll in the gauge",
    )
    thread.join(10)
    assert done.is_set()
    assert value(scrape(gateway), "livecomment_open_connections", transport="long_poll") == 0


def test_it_answers_loopback_only_unless_public(gateways, db):
    gateway = gateways.start()
    # A proxy on this host forwarding an outside client looks like loopback:
    # the X-Forwarded-For it adds gives it away.
    r = httpx.get(gateway.url("/metrics"), headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert httpx.get(gateway.url("/metrics"), headers={"X-Forwarded-For": "127.0.0.1"}, timeout=5).status_code == 200
    assert httpx.post(gateway.url("/metrics"), timeout=5).status_code == 405

    public = gateways.start(METRICS_PUBLIC="1")
    r = httpx.get(public.url("/metrics"), headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
    assert r.status_code == 200
    assert "livecomment_open_connections" in r.text


def test_gateway_stats_follows_the_same_client_rule_as_metrics(gateways, db):
    # Daphne: it passes X-Forwarded-For through untouched, as a local proxy's request.
    gateway = gateways.start("daphne")
    public = gateways.start("daphne", METRICS_PUBLIC="1", GATEWAY_STATS_PUBLIC="1")
    for path in ("/metrics", "/gateway/stats"):
        outside = httpx.get(gateway.url(path), headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}, timeout=5)
        assert outside.status_code == 403, path
        assert outside.json()["error"]["code"] == "forbidden"
        assert httpx.get(gateway.url(path), headers={"X-Forwarded-For": "127.0.0.1"}, timeout=5).status_code == 200
        assert httpx.get(gateway.url(path), timeout=5).status_code == 200
        r = httpx.get(public.url(path), headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
        assert r.status_code == 200, path


def test_it_speaks_openmetrics_when_asked(gateways, db):
    gateway = gateways.start()
    r = httpx.get(gateway.url("/metrics"), headers={"Accept": "application/openmetrics-text"}, timeout=5)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


def test_readyz_answers_503_naming_redis_while_it_is_down(gateways, db):
    var_dir = tempfile.mkdtemp(prefix="lc-ready-")  # short: a unix socket path must fit in 108 bytes
    redis = EmbeddedRedis(var_dir, persist=False)
    redis.start()
    try:
        gateway = gateways.start(REDIS_URL=redis.url)
        r = httpx.get(gateway.url("/readyz"), timeout=5)
        assert r.status_code == 200
        assert r.json() == {"status": "ready", "db": "ok", "redis": "ok"}

        redis.stop()
        r = httpx.get(gateway.url("/readyz"), timeout=10)
        assert r.status_code == 503
        assert r.json() == {"status": "not_ready", "db": "ok", "redis": "down"}
        r = httpx.get(gateway.url("/healthz"), timeout=10)
        assert r.status_code == 503
        assert r.json() == {"status": "down", "db": "ok", "redis": "down"}
        # Liveness holds: the process is fine, Redis is not.
        r = httpx.get(gateway.url("/livez"), timeout=10)
        assert r.status_code == 200
        assert r.json() == {"status": "degraded", "db": "ok", "redis": "down"}
        # And /metrics still answers (it needs no Redis).
        assert httpx.get(gateway.url("/metrics"), timeout=5).status_code == 200

        redis.start()
        wait_for(lambda: httpx.get(gateway.url("/readyz"), timeout=10).status_code == 200, 15, "ready again")
    finally:
        redis.stop()
        shutil.rmtree(var_dir, ignore_errors=True)
