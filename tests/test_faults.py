"""Faults survived with real processes: Redis restarts, the database goes away.

Each test records its figures (acknowledged, delivered, lost, duplicated) with
the `fault_figures` fixture; `make faults` runs these and writes them into
docs/RELIABILITY.md.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.base import alice, video
from tests.endpoint_store import member_count
from tests.realtime_clients import ResumingSSEClient, SSEClient
from tests.servers import ROOT

pytestmark = pytest.mark.faults


class Writer(threading.Thread):
    """Posts a comment every `interval` seconds; remembers what was acknowledged."""

    def __init__(self, base_urls: list[str], token: str, video_id: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.base_urls = base_urls
        self.headers = {"Authorization": f"Token {token}"}
        self.video_id = video_id
        self.interval = interval
        self.acknowledged: list[int] = []
        self.refused: dict[int, int] = {}
        self.unknown = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        n = 0
        with httpx.Client(timeout=5) as client:
            while not self.stop_event.is_set():
                base = self.base_urls[n % len(self.base_urls)]
                try:
                    r = client.post(
                        f"{base}/api/v1/videos/{self.video_id}/comments/",
                        json={"text": f"fault test {n}"},
                        headers=self.headers,
                    )
                    if r.status_code == 201:
                        self.acknowledged.append(r.json()["id"])
                    else:
                        self.refused[r.status_code] = self.refused.get(r.status_code, 0) + 1
                        assert r.status_code == 503 and r.json()["error"]["code"].endswith("_unavailable"), r.text
                except httpx.HTTPError:
                    self.unknown += 1
                n += 1
                self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(10)


def count_delivery(clients, acknowledged: list[int]) -> dict:
    expected = set(acknowledged)
    delivered = lost = duplicated = out_of_order = 0
    for client in clients:
        ids = [i for i in client.comment_ids() if i in expected]
        delivered += len(ids)
        duplicated += len(ids) - len(set(ids))
        lost += len(expected - set(ids))
        if ids != sorted(set(ids), key=ids.index) or ids != [i for i in acknowledged if i in set(ids)]:
            out_of_order += 1
    return {
        "clients": len(clients),
        "acknowledged": len(acknowledged),
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "clients_out_of_order": out_of_order,
    }


def test_it_survives_a_redis_restart_with_200_viewers(gateways, video, alice, persistent_separate_redis, fault_figures):
    redis_server = persistent_separate_redis
    a, b = gateways.start(), gateways.start(server="uvicorn")
    urls = [g.url(f"/api/v1/videos/{video.pk}/stream") for g in (a, b)]
    clients = [ResumingSSEClient([urls[i % 2], urls[(i + 1) % 2]]) for i in range(200)]
    for client in clients:
        assert client.opened.wait(20)
    writer = Writer([a.base, b.base], Token.objects.create(user=alice).key, video.pk)
    writer.start()
    time.sleep(1.5)
    redis_server.stop()
    down_at = time.monotonic()
    time.sleep(2.0)
    refused_while_down = sum(writer.refused.values())
    redis_server.start()
    up_after = time.monotonic() - down_at
    time.sleep(2.5)
    writer.stop()
    deadline = time.monotonic() + 30
    acknowledged = writer.acknowledged
    while time.monotonic() < deadline:
        if all(set(acknowledged) <= set(c.comment_ids()) for c in clients):
            break
        time.sleep(0.2)
    time.sleep(0.5)
    groups_after = member_count(__import__("redis").Redis.from_url(redis_server.url), video.pk)
    for client in clients:
        client.close()
    figures = count_delivery(clients, acknowledged)
    figures.update(
        refused_503=sum(writer.refused.values()),
        transport_errors=writer.unknown,
        reconnects=sum(c.reconnects for c in clients),
        redis_down_seconds=round(up_after, 1),
        groups_after=groups_after,
    )
    fault_figures("Redis restart (200 SSE clients on 2 gateways, a writer posting every 50 ms)", figures)
    assert refused_while_down > 0  # the API said 503 while Redis was down
    assert figures["acknowledged"] > 20
    assert figures["lost"] == 0, figures
    assert figures["duplicated"] == 0, figures
    assert figures["clients_out_of_order"] == 0, figures
    assert figures["groups_after"] == 2  # both gateways are back in the group on their own


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_it_keeps_streaming_from_redis_while_the_database_is_down(gateways, tmp_path, fault_figures):
    """A gateway on a database of its own, which the test takes away and brings back."""
    db_path = Path(tempfile_dir()) / "faults.sqlite3"
    env = gateways.env(DATABASE_URL=f"sqlite:///{db_path}")
    manage(env, "migrate", "--noinput", "-v", "0")
    setup = manage(
        env,
        "shell",
        "-c",
        (
            "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token;"
            "from videos.models import Video;"
            "u = get_user_model().objects.create_user('writer', password='x');"
            "v = Video.objects.create(title='db fault', state='live');"
            "print(v.pk, Token.objects.create(user=u).key)"
        ),
    )
    video_id, token = setup.strip().splitlines()[-1].split()
    gateway = gateways.start(DATABASE_URL=f"sqlite:///{db_path}")
    headers = {"Authorization": f"Token {token}"}
    stream = gateway.url(f"/api/v1/videos/{video_id}/stream")
    watcher = SSEClient(stream).wait_open()
    posted = [
        httpx.post(
            gateway.url(f"/api/v1/videos/{video_id}/comments/"),
            json={"text": f"before {i}"},
            headers=headers,
            timeout=5,
        ).json()["id"]
        for i in range(5)
    ]
    assert watcher.wait_for_comments(5)

    away = db_path.with_suffix(".away")
    os.rename(db_path, away)  # the database is gone...
    db_path.mkdir()  # ...and nothing can be opened in its place
    try:
        r = httpx.post(
            gateway.url(f"/api/v1/videos/{video_id}/comments/"), json={"text": "lost?"}, headers=headers, timeout=5
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
        health = httpx.get(gateway.url("/healthz"), timeout=5)
        assert health.status_code == 503
        assert (health.json()["db"], health.json()["redis"]) == ("down", "ok")
        ready = httpx.get(gateway.url("/readyz"), timeout=5)
        assert ready.status_code == 503 and ready.json()["db"] == "down"
        latecomer = SSEClient(stream).wait_open()  # served from Redis alone
        assert latecomer.status == 200
        assert latecomer.wait_for_comments(5)
        assert latecomer.comment_ids() == posted
        resumed = SSEClient(stream, last_event_id="0-0").wait_open()
        assert resumed.status in (200, 503)  # from the start: the stream holds it all here
    finally:
        shutil.rmtree(db_path)
        for leftover in db_path.parent.glob(db_path.name + "-*"):
            leftover.unlink()
        os.rename(away, db_path)
    after = httpx.post(
        gateway.url(f"/api/v1/videos/{video_id}/comments/"), json={"text": "back"}, headers=headers, timeout=5
    )
    assert after.status_code == 201, after.text
    for client in (watcher, latecomer):
        assert client.wait_until(lambda c: after.json()["id"] in c.comment_ids(), 10)
    acknowledged = posted + [after.json()["id"]]
    figures = count_delivery([watcher, latecomer], acknowledged)
    figures["refused_503"] = 1
    fault_figures("Database unavailable (posting answers 503, streams go on from Redis)", figures)
    assert figures["lost"] == figures["duplicated"] == 0
    for client in (watcher, latecomer, resumed):
        client.close()


def tempfile_dir() -> str:
    import tempfile

    path = tempfile.mkdtemp(prefix="lc-dbfault-")
    return path


@pytest.fixture(autouse=True)
def _cleanup_tmp():
    yield
    for path in Path("/tmp").glob("lc-dbfault-*"):
        shutil.rmtree(path, ignore_errors=True)
