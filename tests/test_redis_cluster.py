"""Redis Cluster (REDIS_CLUSTER_URL): the hot store on a real 3-node cluster.

One cluster per module (tests/redis_cluster.py), flushed before each test.
The real-time guarantees of the single-Redis and sharded suites hold over
it: order across gateways and nodes, resume, gap repair, viewer counts, the
write path's Lua reservation; losing one node affects only the videos whose
slots it serves.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import httpx
import pytest
import redis as redis_py
from django.core.cache import caches
from rest_framework.authtoken.models import Token

from comments import hotstore, services
from dispatcher import publisher
from dispatcher.viewers import viewers_key
from livecomment.lib import redis_client
from livecomment.server.embedded_redis import EmbeddedRedis
from regions.relay import Relay, inbox_key, position_key
from tests.base import alice, bob
from tests.multi_redis import check_resume_and_repair
from tests.realtime_clients import Poster, SSEClient
from tests.redis_cluster import NODES, cluster_env, redis_cluster, use_cluster
from tests.servers import ROOT
from videos.models import Video

pytestmark = pytest.mark.processes


@pytest.fixture
def cluster(redis_cluster, settings):
    """The module's cluster, empty, with this process's settings pointing at it."""
    redis_cluster.flush()
    use_cluster(settings, redis_cluster)
    yield redis_cluster


@pytest.fixture
def videos(transactional_db, cluster):
    """One live video on every node (at least), by the slot of its hash tag."""
    by_node: dict[int, Video] = {}
    n = 0
    while len(by_node) < NODES and n < 100:
        video = Video.objects.create(title=f"v{n}", state=Video.State.LIVE)
        by_node.setdefault(cluster.node_of_key(hotstore.stream_key(video.pk)), video)
        n += 1
    return [by_node[i] for i in range(NODES)]


def start(gateways, cluster, layer_url=None, seeds=None, **env):
    return gateways.start(**cluster_env(cluster, layer_url, seeds=seeds), **env)


def stream(gateway, video, **kwargs) -> SSEClient:
    client = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream"), **kwargs).wait_open()
    client.wait_until(lambda c: c.retry is not None, 5)
    return client


def test_it_keeps_each_videos_keys_on_the_node_of_its_slot(videos, cluster, alice, bob):
    for video in videos:
        video.slow_mode_seconds = 5
        video.save()
        services.post_comment(video, alice, f"hello {video.pk}", idempotency_key="k-1")
        comment = services.post_comment(video, bob, f"hello {video.pk}").comment
        services.remove_comment(comment, bob)
    by_node = cluster.keys_by_node()
    for index, video in enumerate(videos):
        tag = "{%d}" % video.pk
        mine = {key for key in by_node[index] if tag in key}
        # stream, hidden set, and alice's and bob's dedup and slow-mode keys, alice's idempotency key
        assert {key.split(":")[0] for key in mine} == {"video", "idem", "dup", "slow"}, mine
        assert len(mine) == 7, mine
        assert not any(tag in key for other, keys in enumerate(by_node) if other != index for key in keys)
        assert redis_py.Redis.from_url(cluster.nodes[index].url).xlen(hotstore.stream_key(video.pk)) == 3


def test_it_reserves_in_the_videos_slot(gateways, videos, cluster, alice):
    gateway = start(gateways, cluster)
    poster = Poster(gateway.base, Token.objects.create(user=alice).key)
    for video in videos:
        url = f"/api/v1/videos/{video.pk}/comments/"
        first = poster.client.post(url, json={"text": "once"}, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201, first.text
        again = poster.client.post(url, json={"text": "once"}, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 200 and again.json() == first.json()
        duplicate = poster.client.post(url, json={"text": "once"})
        assert duplicate.status_code == 409
        assert duplicate.json()["error"]["code"] == "duplicate"
        plain = poster.client.post(url, json={"text": "no keys at all but dedup"})
        assert plain.status_code == 201
    slow = videos[0]
    slow.slow_mode_seconds = 30
    slow.save()
    url = f"/api/v1/videos/{slow.pk}/comments/"
    assert poster.client.post(url, json={"text": "first in slow mode"}).status_code == 201
    r = poster.client.post(url, json={"text": "too soon"})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "slow_mode"
    assert 1 <= int(r.headers["Retry-After"]) <= 30
    poster.close()


def test_it_delivers_in_order_across_gateways_and_nodes(gateways, cluster, videos, alice):
    a, b = start(gateways, cluster), start(gateways, cluster, server="uvicorn")
    clients = {v.pk: [stream(g, v) for g in (a, b)] for v in videos}
    poster = Poster(a.base, Token.objects.create(user=alice).key)
    posted = {v.pk: [] for v in videos}
    for i in range(5):
        for video in videos:  # interleaved: every node takes writes at once
            posted[video.pk].append(poster.post(video.pk, f"{video.pk}-{i}")["id"])
    for video_id, pair in clients.items():
        for client in pair:
            assert client.wait_for_comments(5)
            time.sleep(0.1)
            assert client.comment_ids() == posted[video_id]
            client.close()
    poster.close()


def test_it_fans_out_through_whichever_node_a_gateway_subscribes_on(gateways, cluster, videos, alice):
    """A PUBLISH on one cluster node reaches subscribers on every node: gateways
    whose channel layer is on different nodes, and a poster publishing on a
    third, all see every comment live (no tip check to fall back on)."""
    slow_tips = {"REALTIME_TIP_CHECK_SECONDS": "600"}
    a = start(gateways, cluster, layer_url=cluster.nodes[1].url, **slow_tips)
    b = start(gateways, cluster, layer_url=cluster.nodes[2].url, **slow_tips)
    video = videos[0]
    clients = [stream(g, video) for g in (a, b)]
    poster = Poster(a.base, Token.objects.create(user=alice).key)
    posted = [poster.post(video.pk, "through node 1")["id"]]  # published on node 1
    posted.append(services.post_comment(video, alice, "through node 0").comment.pk)  # this process: the seed
    for client in clients:
        assert client.wait_for_comments(2, timeout=5)
        assert client.comment_ids() == posted
        client.close()
    for gateway in (a, b):
        stats = httpx.get(gateway.url("/gateway/stats")).json()
        assert stats["messages_received"] >= 2
        assert stats.get("gap_repairs", 0) == 0 and stats.get("tip_repairs", 0) == 0
    poster.close()


def test_it_resumes_and_repairs_on_every_node(gateways, cluster, videos, alice, monkeypatch):
    gateway = start(gateways, cluster, REALTIME_TIP_CHECK_SECONDS="1")  # repairs a lost last message sooner
    check_resume_and_repair(gateway, videos, alice, monkeypatch)
    stats = httpx.get(gateway.url("/gateway/stats")).json()
    assert stats.get("gap_repairs", 0) >= 1 and stats.get("tip_repairs", 0) >= 1


def test_it_counts_viewers_on_every_node(gateways, cluster, videos):
    a, b = (start(gateways, cluster, REALTIME_VIEWERS_INTERVAL="0.2") for _ in range(2))
    for video in videos:
        clients = [stream(g, video) for g in (a, b, b)]
        for client in clients:
            ok = client.wait_until(lambda c: any(e["data"]["count"] == 3 for e in c.of_type("viewers")), 10)
            assert ok, (video.pk, [e["data"] for e in client.of_type("viewers")])
        for client in clients:
            client.close()
    owner = cluster.node_of_key(viewers_key(videos[0].pk))
    assert owner == cluster.node_of_key(hotstore.stream_key(videos[0].pk))  # one slot per video


def test_its_throttles_count_on_the_cluster(videos, cluster, alice, settings):
    from tests.base import client_for

    settings.THROTTLE_POST_RATE = "2/min"
    client = client_for(alice)
    video = videos[0]
    url = f"/api/v1/videos/{video.pk}/comments/"
    assert client.post(url, {"text": "one"}, format="json").status_code == 201
    assert client.post(url, {"text": "two"}, format="json").status_code == 201
    r = client.post(url, {"text": "three"}, format="json")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "throttled"
    assert any(key.startswith("lc-cache") for keys in cluster.keys_by_node() for key in keys)
    cache = caches["default"]
    cache.set_many({"a{1}": 1, "b{2}": 2, "c{3}": 3})  # keys in different slots
    assert cache.get_many(["a{1}", "b{2}", "c{3}", "d"]) == {"a{1}": 1, "b{2}": 2, "c{3}": 3}
    cache.delete_many(["a{1}", "b{2}"])
    assert cache.get_many(["a{1}", "b{2}", "c{3}"]) == {"c{3}": 3}


def test_it_relays_the_region_stream_through_the_cluster(transactional_db, redis_cluster, settings, alice):
    """With several regions the region stream is one key on the cluster ("<region>/0");
    the relay tails it through the cluster client, to a plain Redis target and to
    a cluster target (the inbox and position in one slot, the origins set apart)."""
    redis_cluster.flush()
    use_cluster(settings, redis_cluster, region_stream=True)
    by_node: dict[int, Video] = {}
    while len(by_node) < NODES:
        video = Video.objects.create(title="v", state=Video.State.LIVE)
        by_node.setdefault(redis_cluster.node_of_key(hotstore.stream_key(video.pk)), video)
    texts = [f"on node {i}" for i in range(NODES)]
    for i, video in by_node.items():
        services.post_comment(video, alice, texts[i])
    assert redis_client.cluster_client().xlen(hotstore.REGION_STREAM) == NODES
    plain = EmbeddedRedis(tempfile.mkdtemp(prefix="lc-r-"), persist=False)
    plain.start()
    try:
        relay = Relay([("plain", plain.url), ("clustered", redis_cluster.nodes[2].url)], ingest=False)
        assert [lane.stream for lane in relay.lanes] == ["local/0", "local/0"]
        while relay.run_once():
            pass
        plain_client = redis_py.Redis.from_url(plain.url, decode_responses=True)
        cluster_client = redis_client.cluster_client()
        for target in (plain_client, cluster_client):
            sent = [fields for _id, fields in target.xrange(inbox_key("local/0"))]
            assert sorted(json.loads(f["d"])["text"] for f in sent) == texts
            assert (
                target.get(position_key("local/0")) == cluster_client.xrevrange(hotstore.REGION_STREAM, count=1)[0][0]
            )
            assert target.smembers("relay:origins") == {"local/0"}
        # The ingest loop of a region on the cluster reads its inboxes through the cluster client.
        settings.REGION = "elsewhere"
        ingest = Relay([], ingest=True)
        assert ingest._origins() == ["local/0"]
    finally:
        plain.stop()
        shutil.rmtree(plain.dir.parent, ignore_errors=True)


def test_losing_one_node_affects_only_its_videos(gateways, cluster, videos, alice, settings):
    """The recommended shape: the channel layer on a Redis outside the cluster,
    every node listed as a seed. A process that starts while a node is down
    (the second gateway) finds the cluster through the others."""
    layer = EmbeddedRedis(tempfile.mkdtemp(prefix="lc-layer-"), persist=False)
    layer.start()
    try:
        use_cluster(settings, cluster, layer_url=layer.url, seeds=cluster.urls)
        gateway = start(gateways, cluster, layer_url=layer.url, seeds=cluster.urls)
        poster = Poster(gateway.base, Token.objects.create(user=alice).key)
        lost_video, *other_videos = videos
        watchers = {v.pk: stream(gateway, v) for v in videos}
        for node in cluster.nodes[1:]:
            node.client().script_flush()  # the other nodes must load the write path's scripts with node 0 away
        cluster.stop_node(0)  # the node of lost_video's slot
        r = poster.client.post(f"/api/v1/videos/{lost_video.pk}/comments/", json={"text": "into the void"})
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "redis_unavailable"
        for video in other_videos:
            posted = poster.post(video.pk, f"still fine {video.pk}")
            assert watchers[video.pk].wait_for_comments(1, timeout=5)
            assert watchers[video.pk].comment_ids() == [posted["id"]]
        health = poster.client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["redis"] == "down"
        assert health.json()["redis_nodes"] == {"ok": NODES, "down": 1}  # 2 cluster nodes + the layer's host
        late_starter = gateways.start(wait=False, **cluster_env(cluster, layer.url, seeds=cluster.urls))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and late_starter.alive():
            try:
                if httpx.get(late_starter.url("/healthz"), timeout=2).status_code == 503:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        other = other_videos[0]
        late_poster = Poster(late_starter.base, Token.objects.get(user=alice).key)
        assert late_poster.post(other.pk, "from a gateway started during the outage")["video"] == other.pk
        r = late_poster.client.post(f"/api/v1/videos/{lost_video.pk}/comments/", json={"text": "void"})
        assert r.status_code == 503
        late_poster.close()
        cluster.start_node(0)  # back, empty
        deadline = time.monotonic() + 15
        while poster.client.get("/healthz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert poster.client.get("/healthz").json()["redis_nodes"] == {"ok": NODES + 1, "down": 0}
        posted = poster.post(lost_video.pk, "back again")
        late = stream(gateway, lost_video)
        for client in (late, watchers[lost_video.pk]):  # a new viewer, and one who stayed through the outage
            assert client.wait_for_comments(1, timeout=5)
            assert client.comment_ids() == [posted["id"]]
        for client in [*watchers.values(), late]:
            client.close()
        poster.close()
    finally:
        if cluster.nodes[0].process is None:
            cluster.start_node(0)
        layer.stop()
        shutil.rmtree(layer.dir.parent, ignore_errors=True)


def test_the_whole_cluster_down_is_a_503_naming_redis(client, cluster, transactional_db, alice):
    from tests.base import client_for

    video = Video.objects.create(title="v", state=Video.State.LIVE)
    poster = client_for(alice)
    url = f"/api/v1/videos/{video.pk}/comments/"
    assert poster.post(url, {"text": "before"}, format="json").status_code == 201
    assert client.get("/healthz").status_code == 200
    for index in range(NODES):
        cluster.stop_node(index)
    try:
        r = client.get("/healthz")
        assert r.status_code == 503
        assert r.json()["redis"] == "down"
        assert r.json()["redis_nodes"]["ok"] == 0
        r = poster.post(url, {"text": "nobody there"}, format="json")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "redis_unavailable"
        redis_client._cluster_clients.clear()  # a process starting now: no seed answers
        with pytest.raises(redis_client.ClusterUnavailable):
            redis_client.for_video(video.pk).xlen(hotstore.stream_key(video.pk))
        assert client.get("/healthz").status_code == 503
    finally:
        for node in cluster.nodes:
            node.start()
        cluster.wait_ok()
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "env, message",
    [
        ({"REDIS_CLUSTER_URL": "redis://127.0.0.1:7000", "REDIS_URLS": "redis://a:6379,redis://b:6379"}, "not both"),
        ({"REDIS_CLUSTER_URL": "unix:///tmp/redis.sock"}, "is not a redis:// or rediss:// host URL"),
        ({"REDIS_CLUSTER_URL": "redis://127.0.0.1:7000/3"}, "names a database"),
        ({"REDIS_CLUSTER_URL": "redis://127.0.0.1:7000", "CHANNEL_LAYER": "core"}, "needs REDIS_URL"),
    ],
)
def test_it_refuses_bad_cluster_settings_at_start(env, message):
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_URLS", "REDIS_CLUSTER_URL")}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**base, "DJANGO_SETTINGS_MODULE": "livecomment.settings", **env},
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr, result.stderr[-2000:]
