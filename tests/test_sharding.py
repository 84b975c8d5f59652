"""Several Redis hosts (REDIS_URLS): each video on one host, the real-time guarantees unchanged."""

import shutil
import tempfile
import time

import pytest
import redis as redis_py
from rest_framework.authtoken.models import Token

from comments import hotstore, services
from dispatcher import publisher
from livecomment.lib import redis_client
from livecomment.server.embedded_redis import EmbeddedRedis
from tests.base import alice, bob
from tests.multi_redis import check_resume_and_repair
from tests.realtime_clients import Poster, SSEClient
from videos.models import Video

SHARDS = 3


@pytest.fixture
def shards(settings):
    servers = []
    for _ in range(SHARDS):
        server = EmbeddedRedis(tempfile.mkdtemp(prefix="lc-shard-"), persist=False)
        server.start()
        servers.append(server)
    urls = [s.url for s in servers]
    settings.REDIS_SHARDS = urls
    settings.REDIS_URL = urls[0]
    layers = {**settings.CHANNEL_LAYERS}
    layers["default"] = {**layers["default"], "CONFIG": {**layers["default"]["CONFIG"], "hosts": urls}}
    settings.CHANNEL_LAYERS = layers
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": urls[0]}}
    settings.REGION_STREAM_MAXLEN = 0  # one region: no relay stream (it lives on the first host)
    yield servers
    for server in servers:
        server.stop()
        shutil.rmtree(server.dir.parent, ignore_errors=True)


def start(gateways, shards, **env):
    return gateways.start(REDIS_URLS=",".join(s.url for s in shards), REGION_STREAM_MAXLEN=0, **env)


@pytest.fixture
def videos(transactional_db, shards):
    """One live video on every shard (at least), found by the shard function."""
    by_shard: dict[int, Video] = {}
    n = 0
    while len(by_shard) < SHARDS and n < 100:
        video = Video.objects.create(title=f"v{n}", state=Video.State.LIVE)
        by_shard.setdefault(redis_client.shard_index(video.pk), video)
        n += 1
    return [by_shard[i] for i in range(SHARDS)]


def test_it_keeps_each_videos_stream_on_its_own_host(videos, shards, alice):
    for video in videos:
        services.post_comment(video, alice, f"hello {video.pk}")
    for index, video in enumerate(videos):
        for shard_index, server in enumerate(shards):
            length = redis_py.Redis.from_url(server.url).xlen(hotstore.stream_key(video.pk))
            assert length == (1 if shard_index == index else 0)


def test_it_delivers_in_order_across_gateways_and_hosts(gateways, shards, videos, alice):
    a, b = start(gateways, shards), start(gateways, shards)
    clients = {v.pk: [SSEClient(g.url(f"/api/v1/videos/{v.pk}/stream")).wait_open() for g in (a, b)] for v in videos}
    for pair in clients.values():
        for client in pair:
            client.wait_until(lambda c: c.retry is not None, 5)
    poster = Poster(a.base, Token.objects.create(user=alice).key)
    posted = {v.pk: [poster.post(v.pk, f"{v.pk}-{i}")["id"] for i in range(5)] for v in videos}
    for video_id, pair in clients.items():
        for client in pair:
            assert client.wait_for_comments(5)
            time.sleep(0.1)
            assert client.comment_ids() == posted[video_id]
            client.close()


def test_it_resumes_and_repairs_on_every_host(gateways, shards, videos, alice, monkeypatch):
    gateway = start(gateways, shards)
    check_resume_and_repair(gateway, videos, alice, monkeypatch)


def test_it_counts_viewers_on_every_host(gateways, shards, videos):
    a, b = (start(gateways, shards, REALTIME_VIEWERS_INTERVAL="0.2") for _ in range(2))
    for video in videos:
        clients = [SSEClient(g.url(f"/api/v1/videos/{video.pk}/stream")).wait_open() for g in (a, b, b)]
        for client in clients:
            ok = client.wait_until(lambda c: any(e["data"]["count"] == 3 for e in c.of_type("viewers")), 10)
            assert ok, (video.pk, [e["data"] for e in client.of_type("viewers")])
        for client in clients:
            client.close()


def test_losing_one_host_affects_only_its_videos(gateways, shards, videos, alice):
    gateway = start(gateways, shards)
    poster = Poster(gateway.base, Token.objects.create(user=alice).key)
    lost_video, *other_videos = videos
    watchers = {v.pk: SSEClient(gateway.url(f"/api/v1/videos/{v.pk}/stream")).wait_open() for v in other_videos}
    for client in watchers.values():
        client.wait_until(lambda c: c.retry is not None, 5)
    shards[0].stop()  # the host of lost_video
    r = poster.client.post(f"/api/v1/videos/{lost_video.pk}/comments/", json={"text": "into the void"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "redis_unavailable"
    for video in other_videos:
        posted = poster.post(video.pk, f"still fine {video.pk}")
        assert watchers[video.pk].wait_for_comments(1, timeout=5)
        assert watchers[video.pk].comment_ids() == [posted["id"]]
        watchers[video.pk].close()
    health = poster.client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["redis_shards"] == ["down", "ok", "ok"]


def test_viewer_counts_go_on_for_the_other_hosts_videos_when_one_host_is_lost(gateways, shards, videos):
    gateway = start(gateways, shards, REALTIME_VIEWERS_INTERVAL="0.2")
    lost_video, *other_videos = videos
    # The lost host's video first: the hub counts its videos in the order they came.
    SSEClient(gateway.url(f"/api/v1/videos/{lost_video.pk}/stream")).wait_open()
    watchers = {v.pk: SSEClient(gateway.url(f"/api/v1/videos/{v.pk}/stream")).wait_open() for v in other_videos}
    for client in watchers.values():
        assert client.wait_until(lambda c: any(e["data"]["count"] == 1 for e in c.of_type("viewers")), 10)
    shards[0].stop()  # the host of lost_video
    time.sleep(0.5)  # a few counting rounds meet the lost host
    newcomers = [SSEClient(gateway.url(f"/api/v1/videos/{v.pk}/stream")).wait_open() for v in other_videos]
    for video in other_videos:
        ok = watchers[video.pk].wait_until(lambda c: any(e["data"]["count"] == 2 for e in c.of_type("viewers")), 10)
        assert ok, (video.pk, [e["data"] for e in watchers[video.pk].of_type("viewers")])
    for client in [*watchers.values(), *newcomers]:
        client.close()
