"""Two complete regions on one machine, relaying to each other ("write locally, broadcast").

Each region has its own SQLite database, its own redis-server, one gateway
(Daphne) and `manage.py relay` (which also runs the ingest loop) sending to
the other region. The regions are "east" and "west"; video 1 exists in both
(videos have the same primary key in every region).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from django.db import DatabaseError

from comments import hotstore, services
from comments.models import Comment
from livecomment.lib.errors import Unavailable
from livecomment.server.embedded_redis import EmbeddedRedis
from regions import ingest
from regions.relay import Relay, inbox_key, position_key
from tests.base import *
from tests.realtime_clients import SSEClient
from tests.servers import ROOT, Gateway, Gateways

VIDEO = 1
SCHEDULED = 2  # a second video, scheduled: the state test takes it on air and ends it
SEED = """
from django.contrib.auth import get_user_model
from datetime import timedelta
from django.utils import timezone
from rest_framework.authtoken.models import Token
from videos.models import Video
User = get_user_model()
for name, key, staff in [("alice", "{alice}", False), ("troll", "{troll}", False), ("mod", "{mod}", True)]:
    user = User.objects.create_user(name, is_staff=staff)
    Token.objects.create(user=user, key=key)
Video.objects.create(
    pk={video}, title="Live in every region", state=Video.State.LIVE,
    started_at=timezone.now() - timedelta(seconds={on_air_for}),
)
Video.objects.create(pk={scheduled}, title="Later in every region", state=Video.State.SCHEDULED)
"""


@dataclass
class Region:
    name: str
    dir: Path
    redis: EmbeddedRedis
    tokens: dict
    gateway: Gateway | None = None
    relays: list = field(default_factory=list)

    @property
    def db_path(self) -> Path:
        return self.dir / "db.sqlite3"

    def env(self) -> dict:
        return {
            "REGION": self.name,
            "DATABASE_URL": f"sqlite:///{self.db_path}",
            "REDIS_URL": self.redis.url,
            "VAR_DIR": str(self.dir),
        }

    def process_env(self) -> dict:
        env = os.environ.copy()
        env.update(self.env())
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "livecomment.settings",
                "DEBUG": "1",
                "SECRET_KEY": "regions-test",
                "PYTHONUNBUFFERED": "1",
                "LOG_FORMAT": "plain",
            }
        )
        return env

    def manage(self, *args: str, **popen) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.process_env(), stdin=subprocess.DEVNULL, **popen
        )

    def start_relay(self, other: Region, wait: bool = True) -> subprocess.Popen:
        path = self.dir / f"relay-{len(self.relays)}.log"
        with open(path, "ab") as log:
            process = self.manage(
                "relay", "--to", f"{other.name}={other.redis.url}", stdout=log, stderr=subprocess.STDOUT
            )
        self.relays.append(process)
        if wait:  # until it has asked the other region where it left off
            wait_for(
                lambda: process.poll() is not None or f"to {other.name}: starting after" in path.read_text(),
                timeout=30,
                what="the relay to start",
                regions=[self],
            )
            assert process.poll() is None, path.read_text()
        return process

    def relay_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.dir.glob("relay-*.log")))

    # -- reading this region's state ---------------------------------------------

    def rows(self, sql: str, *params) -> list:
        with sqlite3.connect(self.db_path, timeout=10) as db:
            return db.execute(sql, params).fetchall()

    def comments(self, prefix: str) -> list[tuple]:
        """(text, origin_region, origin_id, status) of comments whose text starts with prefix, in stream order."""
        return self.rows(
            "SELECT text, origin_region, origin_id, status FROM comments_comment "
            "WHERE text LIKE ? AND position IS NOT NULL ORDER BY position",
            prefix + "%",
        )

    def api(self, user: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.gateway.base, timeout=10, headers={"Authorization": f"Token {self.tokens[user]}"}
        )

    def post(self, text: str, user: str = "alice") -> dict:
        with self.api(user) as client:
            r = client.post(f"/api/v1/videos/{VIDEO}/comments/", json={"text": text})
        assert r.status_code == 201, r.text
        return r.json()

    def stream(self, video: int = VIDEO) -> SSEClient:
        return SSEClient(self.gateway.url(f"/api/v1/videos/{video}/stream")).wait_open()


def wait_for(predicate, timeout: float = 10.0, what: str = "condition", regions=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    logs = "\n".join(f"--- {r.name} relays:\n{r.relay_logs()}" for r in regions)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(15)


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    """east and west, each complete, relaying to each other. The tests using it
    run in file order and share it (one start-up for all: the file stays fast)."""
    made: list[Region] = []
    for name in ("east", "west"):
        # Short paths: a unix socket path must fit in 108 bytes.
        directory = Path(tempfile.mkdtemp(prefix="lc-r-"))
        server = EmbeddedRedis(directory, persist=False)
        server.start()
        tokens = {user: secrets.token_hex(20) for user in ("alice", "troll", "mod")}
        made.append(Region(name, directory, server, tokens))
    pool = Gateways(tmp_path_factory.mktemp("regions"))
    try:
        # Both databases start from the same migrated file (REGION is not in it).
        assert made[0].manage("migrate", "--noinput", "-v", "0").wait(120) == 0
        shutil.copyfile(made[0].db_path, made[1].db_path)
        # Each region's started_at of the live video differs (as the relay's delay makes it differ).
        seeds = [
            r.manage("shell", "-c", SEED.format(video=VIDEO, scheduled=SCHEDULED, on_air_for=60 - 30 * i, **r.tokens))
            for i, r in enumerate(made)
        ]
        assert all(p.wait(60) == 0 for p in seeds)
        for region in made:
            region.gateway = pool.start(wait=False, **region.env())
        for region in made:
            pool.wait_ready(region.gateway)
        east, west = made
        east.start_relay(west, wait=False)
        west.start_relay(east)
        wait_for(lambda: "starting after" in east.relay_logs(), timeout=30, what="east's relay", regions=made)
        time.sleep(0.6)  # each ingest loop now watches the other's inbox
        yield east, west
    finally:
        for region in made:
            for process in region.relays:
                stop(process, signal.SIGKILL)
        pool.stop_all()
        for region in made:
            region.redis.stop()
            shutil.rmtree(region.dir, ignore_errors=True)


@pytest.mark.processes
def test_it_delivers_a_comment_to_the_other_regions_viewers_within_a_second(regions):
    east, west = regions
    viewers = {"east": east.stream(), "west": west.stream()}
    try:
        for here, there in ((east, west), (west, east)):
            text = f"hello from {here.name}"
            posted_at = time.monotonic()
            posted = here.post(text)
            viewer = viewers[there.name]
            assert viewer.wait_until(lambda c, t=text: any(e["data"]["text"] == t for e in c.comments()), 10), (
                there.relay_logs()
            )
            event = next(e for e in viewer.comments() if e["data"]["text"] == text)
            took = event["received_at"] - posted_at
            print(f"{here.name} -> {there.name}: post to the other region's viewer in {took * 1000:.0f} ms")
            assert took < 1.0, f"{here.name} -> {there.name} took {took:.2f} s"
            # One global id, the same in both regions (and in the REST API of each).
            assert posted["global_id"] == f"{here.name}:{posted['id']}"
            assert event["data"]["global_id"] == posted["global_id"]
            with there.api("alice") as client:
                page = client.get(f"/api/v1/videos/{VIDEO}/comments/").json()["results"]
            assert [c["global_id"] for c in page if c["text"] == text] == [posted["global_id"]]
            # Its offset in the video is the origin's, not computed again against this region's started_at
            # (30 s apart): in the event and the REST objects of both regions.
            assert posted["offset_ms"] > (50_000 if here is east else 20_000)
            assert event["data"]["offset_ms"] == posted["offset_ms"]
            assert [c["offset_ms"] for c in page if c["text"] == text] == [posted["offset_ms"]]
            # Stored there as a comment from elsewhere, shown to its viewers like a local one.
            assert there.comments(text) == [(text, here.name, posted["id"], "visible")]
            assert viewers[here.name].wait_until(lambda c, t=text: any(e["data"]["text"] == t for e in c.comments()), 5)
    finally:
        for viewer in viewers.values():
            viewer.close()


@pytest.mark.processes
def test_a_relayed_comment_keeps_its_authors_roles(regions):
    """Staff in east is no one in west (a placeholder account there): the
    comment carries the roles east gave it, to west's viewers and API."""
    east, west = regions
    viewer = west.stream()
    try:
        posted = east.post("roles from east", user="mod")
        assert posted["author"]["roles"] == ["staff"]
        assert viewer.wait_until(lambda c: any(e["data"]["text"] == "roles from east" for e in c.comments()), 10)
        event = next(e for e in viewer.comments() if e["data"]["text"] == "roles from east")
        assert event["data"]["author"]["roles"] == ["staff"]
        with west.api("alice") as client:
            page = client.get(f"/api/v1/videos/{VIDEO}/comments/").json()["results"]
        assert [c["author"]["roles"] for c in page if c["text"] == "roles from east"] == [["staff"]]
    finally:
        viewer.close()


@pytest.mark.processes
def test_it_never_echoes_a_relayed_comment_back(regions):
    east, west = regions
    posted = [east.post(f"echo east {i}") for i in range(3)] + [west.post(f"echo west {i}") for i in range(3)]
    for region in regions:
        wait_for(lambda r=region: len(r.comments("echo ")) == 6, what=f"6 comments in {region.name}", regions=regions)
    time.sleep(0.5)  # an echo would arrive by now
    for region in regions:
        rows = region.comments("echo ")
        assert sorted(text for text, *_ in rows) == sorted(c["text"] for c in posted)  # one row per comment
        # This region's own stream for other regions holds only what it accepted itself.
        local = redis.Redis.from_url(region.redis.url, decode_responses=True)
        relayed_here = [f for _i, f in local.xrange("region:events") if '"echo ' in f["d"]]
        assert len(relayed_here) == 3
        assert all(f'"global_id":"{region.name}:' in f["d"] for f in relayed_here)


@pytest.mark.processes
def test_a_killed_relay_restarts_without_losing_or_repeating(regions):
    """SIGKILL east's relay (the sender) and west's (whose ingest loop applies
    east's comments in west) while east is posting; start both again."""
    east, west = regions
    texts = [f"kill {i:02d}" for i in range(30)]

    def post_all():
        for text in texts:
            east.post(text)
            time.sleep(0.01)

    poster = threading.Thread(target=post_all)
    poster.start()
    wait_for(lambda: len(west.comments("kill ")) >= 3, what="some relayed", regions=regions)
    for region in regions:
        relay = region.relays[-1]
        relay.kill()  # SIGKILL mid-stream
        relay.wait(10)
    poster.join(30)
    east.start_relay(west)
    west.start_relay(east)
    wait_for(lambda: len(west.comments("kill ")) >= 30, what="all 30 in west", regions=regions)
    time.sleep(0.3)
    assert [text for text, *_ in west.comments("kill ")] == texts  # each once, in east's order


@pytest.mark.processes
def test_two_relays_at_once_deliver_each_comment_once(regions):
    east, west = regions
    second = east.start_relay(west)
    try:
        time.sleep(1.5)  # let it start
        texts = [f"twice {i:02d}" for i in range(20)]
        for i, text in enumerate(texts):
            east.post(text)
            if i % 4 == 0:  # and both of east's ingest loops apply what west sends
                west.post(f"back {text}")
        wait_for(lambda: len(west.comments("twice ")) >= 20, what="all 20 in west", regions=regions)
        wait_for(lambda: len(east.comments("back twice ")) >= 5, what="all 5 in east", regions=regions)
        time.sleep(0.5)
        assert [text for text, *_ in west.comments("twice ")] == texts
        assert [text for text, *_ in east.comments("back twice ")] == [f"back {t}" for t in texts[::4]]
    finally:
        assert stop(second) == 0  # SIGTERM: finishes its step and exits cleanly


@pytest.mark.processes
def test_a_cut_off_region_catches_up_in_order(regions):
    east, west = regions
    for relay in east.relays:
        if relay.poll() is None:
            assert stop(relay) == 0  # SIGTERM: a clean stop
    # east sends nothing now
    texts = [f"cut {i:02d}" for i in range(20)]
    for text in texts:
        east.post(text)
    time.sleep(0.5)
    assert west.comments("cut ") == []
    viewer = west.stream()
    try:
        east.start_relay(west)
        wait_for(lambda: len(west.comments("cut ")) >= 20, what="west caught up", regions=regions)
        assert [text for text, *_ in west.comments("cut ")] == texts
        assert viewer.wait_until(lambda c: len([e for e in c.comments() if e["data"]["text"].startswith("cut ")]) >= 20)
        assert [e["data"]["text"] for e in viewer.comments() if e["data"]["text"].startswith("cut ")] == texts
    finally:
        viewer.close()


@pytest.mark.processes
def test_a_removal_in_one_region_applies_in_the_other(regions):
    east, west = regions
    posted = east.post("remove me")
    west_id = wait_for(
        lambda: west.rows("SELECT id FROM comments_comment WHERE origin_region='east' AND origin_id=?", posted["id"]),
        what="relayed",
        regions=regions,
    )[0][0]
    viewer = east.stream()
    try:
        with west.api("mod") as client:
            assert client.delete(f"/api/v1/comments/{west_id}/").status_code == 204
        assert viewer.wait_until(
            lambda c: any(e["data"]["id"] == posted["id"] for e in c.of_type("comment.removed")), 5
        )
        assert east.comments("remove me") == [("remove me", "", None, "removed")]
        with east.api("alice") as client:
            page = client.get(f"/api/v1/videos/{VIDEO}/comments/").json()["results"]
        assert "remove me" not in [c["text"] for c in page]
        # And a restore in east comes back to west.
        with east.api("mod") as client:
            r = client.post(f"/api/v1/comments/{posted['id']}/moderate/", json={"action": "restore"})
        assert r.status_code == 200, r.text
        wait_for(lambda: west.comments("remove me")[0][3] == "visible", what="restored in west", regions=regions)
    finally:
        viewer.close()


@pytest.mark.processes
def test_a_ban_in_one_region_applies_in_the_other_to_the_same_person_only(regions):
    east, west = regions
    west.post("troll was here", user="troll")
    wait_for(lambda: east.comments("troll was here"), what="troll's comment in east", regions=regions)
    # In east, west's troll is a placeholder named for its region; east's own "troll" is someone else.
    authors = east.rows(
        "SELECT u.username FROM comments_comment c JOIN auth_user u ON u.id = c.author_id WHERE c.text = ?",
        "troll was here",
    )
    assert authors == [("troll:west",)]
    with east.api("mod") as client:
        r = client.post(f"/api/v1/videos/{VIDEO}/bans/", json={"user": "troll:west", "remove_comments": True})
    assert r.status_code == 201, r.text

    # The ban reaches west: troll cannot post there either; the comment is removed everywhere.
    def refused_in_west():
        with west.api("troll") as client:
            r = client.post(f"/api/v1/videos/{VIDEO}/comments/", json={"text": f"still here {time.monotonic()}"})
        return r.status_code == 403 and r.json()["error"]["code"] == "banned"

    wait_for(refused_in_west, what="troll banned in west", regions=regions)
    wait_for(lambda: west.comments("troll was here")[0][3] == "removed", what="removed in west", regions=regions)
    assert east.comments("troll was here")[0][3] == "removed"

    def active_bans(name):
        return (
            "SELECT count(*) FROM comments_ban b JOIN auth_user u ON u.id = b.user_id "
            f"WHERE u.username = '{name}' AND b.lifted_at IS NULL"
        )

    assert west.rows(active_bans("troll")) == [(1,)]
    assert east.rows(active_bans("troll")) == [(0,)]  # not by name: east's own troll may still post
    east.post("another troll, in east", user="troll")
    # Lifting it in west lifts it in east.
    troll_in_west = west.rows("SELECT id FROM auth_user WHERE username = 'troll'")[0][0]
    with west.api("mod") as client:
        assert client.delete(f"/api/v1/videos/{VIDEO}/bans/{troll_in_west}/").status_code == 204
    wait_for(lambda: east.rows(active_bans("troll:west")) == [(0,)], what="ban lifted in east", regions=regions)
    west.post("troll is back", user="troll")


@pytest.mark.processes
def test_a_video_state_change_applies_in_both_regions(regions):
    east, west = regions
    viewers = {"east": east.stream(SCHEDULED), "west": west.stream(SCHEDULED)}
    try:
        for here, state in ((east, "live"), (west, "ended")):
            with here.api("mod") as client:
                r = client.patch(f"/api/v1/videos/{SCHEDULED}/", json={"state": state})
            assert r.status_code == 200, r.text
            for region in regions:
                assert viewers[region.name].wait_until(
                    lambda c, s=state: any(e["data"]["state"] == s for e in c.of_type("video.state")), 5
                ), region.name
                assert region.rows("SELECT state FROM videos_video WHERE id=?", SCHEDULED) == [(state,)]
        # An ended video stays ended, in every region.
        with east.api("mod") as client:
            r = client.patch(f"/api/v1/videos/{SCHEDULED}/", json={"state": "live"})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_state_transition")
        for region in regions:
            assert region.rows("SELECT state FROM videos_video WHERE id=?", SCHEDULED) == [("ended",)]
    finally:
        for viewer in viewers.values():
            viewer.close()


@pytest.mark.processes
def test_a_region_whose_redis_was_away_catches_up(regions):
    east, west = regions
    west.redis.stop()  # west's Redis is down (and comes back empty: no persistence)
    texts = [f"away {i}" for i in range(5)]
    for text in texts:
        east.post(text)
    time.sleep(0.5)
    west.redis.start()
    # The relay re-reads its position (gone), sends again what east's stream
    # holds; west applies only what its database has not seen.
    wait_for(lambda: len(west.comments("away ")) >= 5, timeout=15, what="west caught up", regions=regions)
    time.sleep(0.5)
    assert [text for text, *_ in west.comments("away ")] == texts
    assert len(west.comments("hello from east")) == 1


# -- in one process: the write path's region entries, the relay's checks, ingest ------------


def region_entries(redis_conn) -> list[dict]:
    return [fields for _id, fields in redis_conn.xrange(hotstore.REGION_STREAM)]


def test_it_notes_what_this_region_accepts_and_nothing_that_failed(transactional_db, alice, staff, video, redis):
    comment = services.post_comment(video, alice, "noted").comment
    services.remove_comment(comment, staff)

    def fail():
        raise DatabaseError("disk full")

    services.store.FAIL_POINTS["before_commit"] = fail
    with pytest.raises(Unavailable):
        services.post_comment(video, alice, "never committed")
    services.store.FAIL_POINTS.clear()
    services.update_video(video, staff, slow_mode_seconds=5)
    entries = region_entries(redis)
    assert [e["t"] for e in entries] == ["comment", "status", "video"]  # the failed post left nothing
    assert entries[0]["c"] == str(comment.pk) and f'"global_id":"local:{comment.pk}"' in entries[0]["d"]
    assert entries[2]["d"] == '{"changes":{"slow_mode_seconds":5}}'


def test_the_relay_sends_only_committed_changes_and_gives_up_on_abandoned_ones(
    transactional_db, alice, video, redis, settings
):
    first = services.post_comment(video, alice, "first").comment
    # An entry whose transaction has not committed (yet): a row that does not exist.
    hotstore.append_region("comment", video.pk, {"text": "in flight"}, c=first.pk + 1000)
    relay = Relay([("far", settings.REDIS_URL)], ingest=False, in_flight_seconds=0.3)
    assert relay.run_once() == 1  # "first" went; the relay waits at the one in flight
    sent = redis.xrange(inbox_key("local/0"))
    assert [json_text(f) for _i, f in sent] == ["first"]
    time.sleep(0.4)
    services.post_comment(video, alice, "second")
    relay.run_once()  # the abandoned entry is passed over, "second" goes
    assert [json_text(f) for _i, f in redis.xrange(inbox_key("local/0"))] == ["first", "second"]
    assert redis.get(position_key("local/0")) == redis.xrevrange(hotstore.REGION_STREAM, count=1)[0][0]
    assert relay.stats["abandoned"] == 1
    # A second relay (or this one restarted) finds nothing more to send.
    assert Relay([("far", settings.REDIS_URL)], ingest=False).run_once() == 0
    assert len(redis.xrange(inbox_key("local/0"))) == 2


def json_text(fields: dict) -> str:
    return json.loads(fields["d"])["text"]


def test_ingest_applies_each_remote_change_once(transactional_db, video, redis):
    data = {
        "id": 7,
        "video": video.pk,
        "author": {"id": 3, "name": "zed"},
        "text": "from afar",
        "created": "2026-11-24T22:00:00.000Z",
        "global_id": "far:7",
        "status": "visible",
    }
    assert ingest.ingest_remote_event("far", "100-0", "comment", video.pk, data) == "applied"
    assert ingest.ingest_remote_event("far", "100-0", "comment", video.pk, data) == "duplicate"
    assert ingest.ingest_remote_event("far", "101-0", "comment", video.pk, data) == "duplicate"  # same comment
    comment = Comment.objects.get(origin_region="far")
    assert (comment.origin_id, comment.global_id, comment.author.username) == (7, "far:7", "zed:far")
    assert comment.created.isoformat() == "2026-11-24T22:00:00+00:00"
    assert not comment.author.has_usable_password()
    assert region_entries(redis) == []  # no echo: nothing for the relay of this region
    removal = {"comment": "far:7", "status": "removed", "action": "remove", "reason": ""}
    assert ingest.ingest_remote_event("far", "102-0", "status", video.pk, removal) == "applied"
    assert Comment.objects.get(pk=comment.pk).status == "removed"
    assert ingest.ingest_remote_event("far", "103-0", "comment", 999, data).startswith("skipped")  # no such video
    assert ingest.ingest_remote_event("far", "104-0", "status", video.pk, {"comment": "far:8"}).startswith("skipped")
    assert ingest.ingest_remote_event("far", "105-0", "video", video.pk, {"changes": {"state": "bogus"}}).startswith(
        "skipped"
    )
    assert ingest.ingest_remote_event("local", "106-0", "comment", video.pk, data).startswith("skipped")  # own
    assert region_entries(redis) == []


def test_the_relay_sends_everything_again_to_a_target_that_lost_its_data(
    transactional_db, alice, video, redis, settings
):
    services.post_comment(video, alice, "one")
    relay = Relay([("far", settings.REDIS_URL)], ingest=False)
    relay.run_once()
    redis.delete(inbox_key("local/0"), position_key("local/0"))  # the target's Redis restarted empty
    services.post_comment(video, alice, "two")
    while relay.run_once():
        pass
    assert [json_text(f) for _i, f in redis.xrange(inbox_key("local/0"))] == ["one", "two"]


def test_each_redis_host_has_its_own_region_stream(transactional_db, alice, redis, settings):
    """With REDIS_URLS a change goes on the region stream of its video's host:
    losing a host stops only its videos, here and in what is relayed."""
    from livecomment.lib import redis_client
    from videos.models import Video

    second = EmbeddedRedis(tempfile.mkdtemp(prefix="lc-r-"), persist=False)
    second.start()
    try:
        settings.REDIS_SHARDS = [settings.REDIS_URL, second.url]
        by_host = {}
        while len(by_host) < 2:
            video = Video.objects.create(title="v", state=Video.State.LIVE)
            by_host.setdefault(redis_client.shard_index(video.pk), video)
        for host, video in by_host.items():
            services.post_comment(video, alice, f"on host {host}")
        relay = Relay([("far", settings.REDIS_URL)], ingest=False)
        relay.run_once()
        for host in (0, 1):
            assert [json_text(f) for _i, f in redis.xrange(inbox_key(f"local/{host}"))] == [f"on host {host}"]
        second.stop()
        services.post_comment(by_host[0], alice, "host 0 still takes comments")
        with pytest.raises(Unavailable):
            services.post_comment(by_host[1], alice, "host 1 is away")
        relay.run_once()
        assert [json_text(f) for _i, f in redis.xrange(inbox_key("local/0"))][-1] == "host 0 still takes comments"
    finally:
        second.stop()
        shutil.rmtree(second.dir.parent, ignore_errors=True)


# -- who is who across regions: by (region, id), never by name --------------------------------


def far_comment(video, number: int, author: dict, text: str = "from afar") -> dict:
    return {
        "id": number,
        "video": video.pk,
        "author": author,
        "text": text,
        "created": "2026-11-24T22:00:00.000Z",
        "global_id": f"far:{number}",
        "status": "visible",
    }


def test_ingest_never_posts_as_a_local_account_of_the_same_name(transactional_db, staff, video, redis):
    from regions.models import RemoteUser

    # Someone signed up "staff" in region far and posts there.
    assert (
        ingest.ingest_remote_event("far", "1-0", "comment", video.pk, far_comment(video, 1, {"id": 3, "name": "staff"}))
        == "applied"
    )
    author = Comment.objects.get(origin_id=1).author
    assert author.pk != staff.pk and author.username == "staff:far"
    assert not author.is_staff and not author.has_usable_password()
    assert RemoteUser.objects.get(user=author).origin_user_id == 3
    # Same far user renamed: same account here. Another far user with that name: another one.
    renamed = far_comment(video, 2, {"id": 3, "name": "sneaky"})
    assert ingest.ingest_remote_event("far", "2-0", "comment", video.pk, renamed) == "applied"
    assert Comment.objects.get(origin_id=2).author == author
    other = far_comment(video, 3, {"id": 4, "name": "staff"})
    assert ingest.ingest_remote_event("far", "3-0", "comment", video.pk, other) == "applied"
    assert Comment.objects.get(origin_id=3).author.username == "staff:far:4"
    # A comment's author is a user of the region it comes from, whatever the entry claims.
    claims_ours = far_comment(video, 5, {"id": staff.pk, "name": "staff", "region": "local"})
    assert ingest.ingest_remote_event("far", "4-0", "comment", video.pk, claims_ours) == "applied"
    assert Comment.objects.get(origin_id=5).author.pk != staff.pk
    assert not Comment.objects.filter(author=staff).exists()


def test_signing_up_cannot_take_a_placeholders_name(client, db):
    r = client.post(
        "/accounts/signup/", {"username": "staff:far", "password1": "Xq9!long-pass", "password2": "Xq9!long-pass"}
    )
    assert r.status_code == 200  # the form again, with its error
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="staff:far").exists()


def test_ingest_bans_by_global_identity_never_by_name(transactional_db, alice, staff, video, redis):
    from comments.models import Ban

    assert ingest.ingest_remote_event("far", "1-0", "ban", video.pk, {"user": "alice", "reason": "by name"}).startswith(
        "skipped"
    )
    far_alice = {"region": "far", "id": 9, "name": "alice"}
    assert (
        ingest.ingest_remote_event("far", "2-0", "ban", video.pk, {"user": far_alice, "reason": "x" * 10_000})
        == "applied"
    )
    ban = Ban.objects.get()
    assert ban.user.username == "alice:far" and ban.user.pk != alice.pk
    assert len(ban.reason) == services.REASON_MAX  # free text from another region is cut
    assert services.active_ban(video, alice) is None
    # A region banning one of ours (through its placeholder for them) names them by our id.
    ours = {"region": "local", "id": alice.pk, "name": "alice:far"}
    assert ingest.ingest_remote_event("far", "3-0", "ban", video.pk, {"user": ours}) == "applied"
    assert services.active_ban(video, alice) is not None
    # Staff are banned only where they are staff.
    staff_here = {"region": "local", "id": staff.pk, "name": "staff"}
    assert ingest.ingest_remote_event("far", "4-0", "ban", video.pk, {"user": staff_here}).startswith("skipped")
    assert services.active_ban(video, staff) is None
    assert ingest.ingest_remote_event("far", "5-0", "unban", video.pk, {"user": far_alice}) == "applied"
    assert services.active_ban(video, ban.user) is None and services.active_ban(video, alice) is not None


def test_a_ban_goes_to_other_regions_with_who_it_is_everywhere(transactional_db, alice, staff, video, redis):
    ingest.ingest_remote_event("far", "1-0", "comment", video.pk, far_comment(video, 1, {"id": 3, "name": "zed"}))
    placeholder = Comment.objects.get(origin_id=1).author
    services.ban_user(video, alice, staff, 60, "calm down")
    services.ban_user(video, placeholder, staff, None, "r" * 600)
    services.lift_ban(video, placeholder, staff, "sorry")
    sent = [(e["t"], json.loads(e["d"])) for e in region_entries(redis)]
    assert [kind for kind, _ in sent] == ["ban", "ban", "unban"]
    assert sent[0][1]["user"] == {"region": "local", "id": alice.pk, "name": "alice"}
    # The placeholder stands for far's user 3: that is who the other regions ban.
    assert sent[1][1]["user"] == {"region": "far", "id": 3, "name": "zed:far"}
    assert len(sent[1][1]["reason"]) == services.REASON_MAX
    assert sent[2][1]["user"]["id"] == 3


def test_the_api_refuses_a_reason_longer_than_the_limit(transactional_db, alice, staff, video, redis):
    comment = services.post_comment(video, alice, "hm").comment
    client = client_for(staff)
    long = "r" * (services.REASON_MAX + 1)
    for path, body in (
        (f"/api/v1/comments/{comment.pk}/moderate/", {"action": "remove", "reason": long}),
        (f"/api/v1/videos/{video.pk}/bans/", {"user": alice.pk, "reason": long}),
        (f"/api/v1/comments/{comment.pk}/report/", {"reason": long}),
    ):
        r = client.post(path, body, format="json")
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_reason"), path
    assert Comment.objects.get(pk=comment.pk).status == "visible"
    assert region_entries(redis) == [region_entries(redis)[0]]  # the comment only
