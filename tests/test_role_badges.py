"""Role badges: every comment's author carries `roles` (host, moderator,
staff), set on the write path from cached data and stored on the row, so the
REST API, the stream and region relays carry them without a query per comment."""

import json
from typing import get_args

import pytest

from comments import events, hotstore, queries
from comments.models import Comment
from comments.services import rules
from dispatcher import backlog
from regions import ingest
from tests.base import *
from videos.models import Video


def post(user, video, text):
    r = client_for(user).post(f"/api/v1/videos/{video.pk}/comments/", {"text": text}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


@pytest.fixture
def cast(db, video, alice, staff):
    """The video's owner (alice), a designated host, a moderator, staff, and a
    staff member who owns nothing but moderates it too."""
    host, mod, boss = make_user("cohost"), make_user("mod"), make_user("boss", staff=True)
    video.owner = alice
    video.save(update_fields=["owner"])
    video.hosts.add(host)
    video.moderators.add(mod, boss)
    return {"owner": alice, "host": host, "mod": mod, "staff": staff, "boss": boss}


EXPECTED = {
    "owner": ["host"],
    "host": ["host"],
    "mod": ["moderator"],
    "staff": ["staff"],
    "boss": ["moderator", "staff"],
    "viewer": [],
}


def test_it_gives_each_author_their_roles_in_the_video(cast, video, bob, redis):
    people = {**cast, "viewer": bob}
    posted = {who: post(user, video, f"hello from {who}") for who, user in people.items()}
    for who, body in posted.items():
        assert body["author"] == {"id": people[who].pk, "name": people[who].username, "roles": EXPECTED[who]}, who
        assert Comment.objects.get(pk=body["id"]).author_roles == " ".join(EXPECTED[who])
    # The stream (what the fan-out sends and catch-up reads) carries them as posted.
    stream = {json.loads(e[1]["d"])["id"]: json.loads(e[1]["d"]) for e in redis.xrange(hotstore.stream_key(video.pk))}
    for who, body in posted.items():
        assert stream[body["id"]]["author"]["roles"] == EXPECTED[who], who
    # So does a page read, from the stream and from the database.
    listed = client_for().get(f"/api/v1/videos/{video.pk}/comments/").json()["results"]
    assert {c["author"]["name"]: c["author"]["roles"] for c in listed} == {
        people[who].username: roles for who, roles in EXPECTED.items()
    }
    redis.delete(hotstore.stream_key(video.pk))
    listed = client_for().get(f"/api/v1/videos/{video.pk}/comments/").json()["results"]
    assert {c["author"]["name"]: c["author"]["roles"] for c in listed} == {
        people[who].username: roles for who, roles in EXPECTED.items()
    }


def test_it_keeps_the_roles_a_comment_was_posted_with(cast, video):
    """A badge says what the author was when they wrote it: a host who is
    dropped later keeps the badge on what they wrote as host, not after."""
    first = post(cast["host"], video, "as host")
    video.hosts.remove(cast["host"])  # the cache is dropped at once in this process
    second = post(cast["host"], video, "as a viewer")
    comments = client_for().get(f"/api/v1/videos/{video.pk}/comments/").json()["results"]
    roles = {c["id"]: c["author"]["roles"] for c in comments}
    assert roles == {first["id"]: ["host"], second["id"]: []}


def test_it_computes_roles_from_cached_data_on_the_write_path(cast, video, django_assert_num_queries):
    """The hosts and moderators of a video are asked once per cache period,
    not on every post: with warm caches, roles cost no query."""
    rules.author_roles(cast["mod"], video)  # warms both caches
    for user in cast.values():
        with django_assert_num_queries(0):
            rules.author_roles(user, video)


def test_it_reads_a_page_of_comments_without_a_query_per_comment(cast, video, bob, django_assert_num_queries):
    """A page from the database (history, catch-up past the stream, a
    connection's backlog) costs as many queries for 33 comments as for 3."""
    people = [*cast.values(), bob]
    for i in range(3):
        post(people[i], video, f"few {i}")

    def read():  # a page of the REST API or the console, from the database
        return queries.page_before(video.pk, None, 100, prefer_stream=False).results

    def replay():
        return backlog.database_page(video.pk, "0-0", None, 1000, moderator=False).events

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert len(read()) == 3
    few_rest = len(captured)  # now: the requests below reset the connection's log
    with CaptureQueriesContext(connection) as captured:
        assert len(replay()) == 3
    few_backlog = len(captured)
    assert few_rest and few_backlog
    for i in range(30):
        post(people[i % len(people)], video, f"many {i}")
    with django_assert_num_queries(few_rest):
        page = read()
    assert len(page) == 33
    assert {tuple(c["author"]["roles"]) for c in page} == {tuple(r) for r in EXPECTED.values()}
    with django_assert_num_queries(few_backlog):
        replayed = replay()
    assert len(replayed) == 33
    assert [json.loads(e.data)["author"]["roles"] for e in replayed] == [c["author"]["roles"] for c in page]


def test_it_sends_the_roles_to_other_regions(cast, video, redis, settings):
    settings.REGION_STREAM_MAXLEN = 1000
    posted = post(cast["boss"], video, "to every region")
    [entry] = [f for _, f in redis.xrange(hotstore.REGION_STREAM) if json.loads(f["d"]).get("id") == posted["id"]]
    assert json.loads(entry["d"])["author"]["roles"] == ["moderator", "staff"]


def test_it_relays_a_comment_with_the_roles_of_its_origin(transactional_db, video, redis):
    """A comment from another region carries the roles it had there (this
    region knows neither its hosts' accounts nor its staff); names it does
    not know are dropped."""
    data = {
        "id": 7,
        "video": video.pk,
        "author": {"id": 3, "name": "zed", "roles": ["host", "wizard", "staff"]},
        "text": "from afar",
        "created": "2026-11-24T22:00:00.000Z",
        "global_id": "far:7",
        "status": "visible",
    }
    assert ingest.ingest_remote_event("far", "100-0", "comment", video.pk, data) == "applied"
    comment = Comment.objects.get(origin_region="far", origin_id=7)
    assert comment.author_roles == "host staff"
    [entry] = redis.xrange(hotstore.stream_key(video.pk))
    assert json.loads(entry[1]["d"])["author"]["roles"] == ["host", "staff"]
    older = {**data, "global_id": "far:8", "author": {"id": 3, "name": "zed"}}  # a relay from before roles
    assert ingest.ingest_remote_event("far", "101-0", "comment", video.pk, older) == "applied"
    assert Comment.objects.get(origin_region="far", origin_id=8).author_roles == ""


def test_it_names_the_same_roles_everywhere():
    assert rules.ROLES == get_args(events.Role)
    assert Video._meta.get_field("owner").null


def test_it_knows_the_owner_on_the_token_post_path_without_a_query(cast, video, django_assert_num_queries):
    """The token POST in front of Django loads the video with its own statement
    (comments/fastpost/lookup.py); that row has the owner, so the roles of a
    post there cost no query either."""
    from rest_framework.authtoken.models import Token

    from comments.fastpost import lookup

    token, _ = Token.objects.get_or_create(user=cast["owner"])
    users, found, _ = lookup.look_up(video.pk, [token.key])
    assert found is not None and "owner_id" not in found.get_deferred_fields()
    rules.author_roles(cast["mod"], found)  # warms the caches
    with django_assert_num_queries(0):
        assert rules.author_roles(users[token.key], found) == "host"
