"""GET /healthz (200 when the database and Redis answer, else 503 naming what is down),
GET /readyz (the same, and 503 while draining) and GET /livez (200 while the process answers)."""

import time

import httpx
import pytest


def test_it_answers_ok_when_everything_is_up(client, db):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r["Content-Type"] == "application/json"
    assert r.json() == {"status": "ok", "db": "ok", "redis": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "db": "ok", "redis": "ok"}


def test_it_answers_503_naming_redis_when_redis_is_down(client, db, separate_redis):
    assert client.get("/readyz").status_code == 200
    separate_redis.stop()
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"status": "not_ready", "db": "ok", "redis": "down"}
    r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "down", "db": "ok", "redis": "down"}
    # Liveness: the process is up (restarting it would not bring Redis back).
    r = client.get("/livez")
    assert r.status_code == 200
    assert r.json() == {"status": "degraded", "db": "ok", "redis": "down"}

    # And recovers by itself once Redis is back.
    separate_redis.start()
    r = client.get("/readyz")
    assert r.status_code == 200, r.content
    assert r.json()["redis"] == "ok"
    assert client.get("/healthz").json()["status"] == "ok"


def test_it_answers_503_naming_redis_when_nothing_listens(client, db, settings):
    from tests.separate_redis import point_app_at
    from tests.servers import free_port

    point_app_at(settings, f"redis://127.0.0.1:{free_port()}/0")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["redis"] == "down"
    assert client.get("/healthz").json()["redis"] == "down"


@pytest.mark.processes
def test_it_answers_503_naming_the_database_when_it_is_down(gateways, tmp_path):
    """A gateway whose database cannot be opened still answers, with 503."""
    gateway = gateways.start(DATABASE_URL=f"sqlite:///{tmp_path}/missing-dir/db.sqlite3", wait=False)
    deadline = time.monotonic() + 30
    while True:
        assert gateway.alive(), gateway.log()
        try:
            r = httpx.get(gateway.url("/readyz"), timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, gateway.log()
            time.sleep(0.1)
    assert r.status_code == 503
    assert r.json() == {"status": "not_ready", "db": "down", "redis": "ok"}
    r = httpx.get(gateway.url("/healthz"), timeout=5)
    assert r.status_code == 503
    assert r.json() == {"status": "down", "db": "down", "redis": "ok"}
    assert httpx.get(gateway.url("/livez"), timeout=5).status_code == 200

    # The API says the same, in its error shape, on every endpoint.
    for path in ("/api/v1/videos/", "/api/v1/videos/1/", "/api/v1/videos/1/comments/", "/api/v1/comments/1/"):
        r = httpx.get(gateway.url(path), timeout=5)
        assert r.status_code == 503, (path, r.text[:300])
        assert r.json()["error"]["code"] == "database_unavailable", path
        assert r.headers["Retry-After"]
