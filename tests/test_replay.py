"""Chat replay: every comment's offset in the video (`offset_ms`) and
GET /api/v1/videos/<id>/replay/ (comments by video time)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from comments import hotstore, services
from comments.fastpost.batcher import PostRequest, write_batch
from comments.models import BlockedTerm, Comment
from comments.streaming import post_from_socket
from regions import ingest
from tests.base import *
from videos.lookups import get_video
from videos.models import Video

MS = timedelta(milliseconds=1)


@pytest.fixture
def started(db):
    """A live video that went on air 5 seconds ago."""
    return Video.objects.create(
        title="On air", state=Video.State.LIVE, started_at=timezone.now() - timedelta(seconds=5)
    )


def offset_of(comment: Comment) -> int:
    return (comment.created - comment.video.started_at) // MS


# -- offset_ms on every write path ---------------------------------------------------------------


def test_it_stores_the_offset_from_the_videos_start_on_a_rest_post(alice_client, started, redis):
    r = alice_client.post(f"/api/v1/videos/{started.pk}/comments/", {"text": "hi"}, format="json")
    assert r.status_code == 201, r.content
    comment = Comment.objects.get(pk=r.json()["id"])
    assert 5000 <= comment.offset_ms == offset_of(comment) < 65_000
    assert r.json()["offset_ms"] == comment.offset_ms
    # In the REST objects (list and detail) and in the `comment` event in the stream.
    listed = alice_client.get(f"/api/v1/videos/{started.pk}/comments/").json()["results"]
    assert [c["offset_ms"] for c in listed] == [comment.offset_ms]
    assert alice_client.get(f"/api/v1/comments/{comment.pk}/").json()["offset_ms"] == comment.offset_ms
    ((_, entry),) = redis.xrange(hotstore.stream_key(started.pk))
    assert json.loads(entry["d"])["offset_ms"] == comment.offset_ms


def test_it_stores_a_null_offset_when_the_video_has_no_started_at(alice_client, video, redis):
    assert video.started_at is None
    r = alice_client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": "hi"}, format="json")
    assert r.status_code == 201 and r.json()["offset_ms"] is None
    assert Comment.objects.get().offset_ms is None


def test_it_stores_a_negative_offset_for_a_comment_before_the_start(alice, redis, db):
    # started_at set (e.g. by hand, to where the recording starts) after the comment's time.
    later = Video.objects.create(title="x", state=Video.State.LIVE, started_at=timezone.now() + timedelta(seconds=30))
    comment = Comment.objects.get(pk=services.post_comment(later, alice, "before the start").comment.pk)
    assert -30_000 <= comment.offset_ms == offset_of(comment) < -25_000


def test_it_stores_the_offsets_of_a_batch_in_one_write(transactional_db, started, redis):
    # transactional_db: on PostgreSQL this is the multi-row INSERT after the append.
    authors = [make_user(f"poster{i}") for i in range(5)]
    outcomes = services.post_comments(started, [services.Draft(a, f"batch {a.pk}", None) for a in authors])
    ids = [outcome.comment.pk for outcome in outcomes]
    stored = list(Comment.objects.filter(pk__in=ids).select_related("video"))
    assert len(stored) == 5 and all(c.offset_ms is not None and c.offset_ms == offset_of(c) for c in stored)


def test_it_stores_the_offset_on_the_fast_path(transactional_db, alice, started, redis):
    token = Token.objects.create(user=alice).key
    (reply,) = write_batch(started.pk, [PostRequest(token, "fast", None, {"REMOTE_ADDR": "127.0.0.1"})])
    assert reply.status == 201, reply.body
    comment = Comment.objects.select_related("video").get(pk=reply.body["id"])
    assert reply.body["offset_ms"] == comment.offset_ms == offset_of(comment) >= 5000


def test_it_stores_the_offset_of_a_websocket_post(transactional_db, alice, started, redis):
    answer = post_from_socket(get_video(started.pk), alice, "over the socket", None, {"REMOTE_ADDR": "127.0.0.1"})
    assert answer.status == 201, answer.body
    comment = Comment.objects.select_related("video").get(pk=answer.body["id"])
    assert answer.body["offset_ms"] == comment.offset_ms == offset_of(comment) >= 5000


def test_it_never_takes_an_offset_from_the_client(alice_client, started, redis):
    r = alice_client.post(f"/api/v1/videos/{started.pk}/comments/", {"text": "hi", "offset_ms": -5}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_fields"
    assert not Comment.objects.exists()


def test_it_keeps_the_origin_regions_offset_of_a_relayed_comment(transactional_db, started, redis):
    # Here the video started 5 s ago; the origin's offset (its own started_at) is stored as it was there.
    data = {
        "id": 7,
        "video": started.pk,
        "author": {"id": 3, "name": "zed"},
        "text": "from afar",
        "created": timezone.now().isoformat(),
        "global_id": "far:7",
        "status": "visible",
        "offset_ms": -1234,
    }
    assert ingest.ingest_remote_event("far", "1-0", "comment", started.pk, data) == "applied"
    comment = Comment.objects.get(origin_region="far", origin_id=7)
    assert comment.offset_ms == -1234
    data = {**data, "id": 8, "global_id": "far:8", "offset_ms": "soon"}  # malformed: no offset, not a made-up one
    assert ingest.ingest_remote_event("far", "2-0", "comment", started.pk, data) == "applied"
    assert Comment.objects.get(origin_region="far", origin_id=8).offset_ms is None


# -- GET /api/v1/videos/<id>/replay/ -------------------------------------------------------------


def replay(client, video, **params):
    return client.get(f"/api/v1/videos/{video.pk}/replay/", params)


def posted_at(video, author, offsets: list[int]) -> list[int]:
    """Comments of `author` at these offsets (set on the rows: the order of posting is not the order of offsets)."""
    ids = []
    for n, offset in enumerate(offsets):
        comment = services.post_comment(video, author, f"at {offset} #{n}").comment
        Comment.objects.filter(pk=comment.pk).update(offset_ms=offset)
        ids.append(comment.pk)
    return ids


def test_it_replays_a_range_in_offset_order_with_ties_in_stream_order(anon_client, alice, started, redis):
    ids = posted_at(started, alice, [3000, 1000, 2000, 1000, 5000, -4000])
    r = replay(anon_client, started, from_ms=0, to_ms=5000)
    assert r.status_code == 200, r.content
    body = r.json()
    # from_ms inclusive, to_ms exclusive; 1000 twice: the one posted first first.
    assert [c["id"] for c in body["results"]] == [ids[1], ids[3], ids[2], ids[0]]
    assert [c["offset_ms"] for c in body["results"]] == [1000, 1000, 2000, 3000]
    assert body["has_more"] is False and body["next_from_ms"] == 5000 and body["cursor"] is None
    assert set(body["results"][0]) == {"id", "cursor", "video", "author", "text", "created", "global_id", "offset_ms"}
    # Chat before the start has negative offsets.
    before = replay(anon_client, started, from_ms=-10_000, to_ms=1000).json()["results"]
    assert [c["id"] for c in before] == [ids[5]]
    assert replay(anon_client, started, from_ms=2000, to_ms=2001).json()["results"][0]["id"] == ids[2]
    assert replay(anon_client, started, from_ms=2000, to_ms=2000).json()["results"] == []


def test_it_pages_through_ties_at_one_offset_without_losing_or_repeating_any(anon_client, alice, started, redis):
    ids = posted_at(started, alice, [1000] * 7 + [2000] * 3 + [500])
    expected = [ids[10], *ids[:10]]
    seen, params, pages = [], {"from_ms": 0, "to_ms": 10_000, "limit": 3}, 0
    while True:
        body = replay(anon_client, started, **params).json()
        pages += 1
        seen += [c["id"] for c in body["results"]]
        if not body["has_more"]:
            assert body["next_from_ms"] == 10_000 and body["cursor"] is None
            break
        last = body["results"][-1]
        assert (body["next_from_ms"], body["cursor"]) == (last["offset_ms"], last["cursor"])
        params = {**params, "from_ms": body["next_from_ms"], "after": body["cursor"]}
    assert seen == expected and pages == 4


def test_it_never_replays_held_or_removed_comments_even_removed_after_the_end(
    anon_client, alice, staff, started, redis
):
    services.save_blocked_term(BlockedTerm(term="spoiler", video=started), staff)
    kept, removed = (services.post_comment(started, alice, text).comment for text in ("kept", "removed later"))
    held = services.post_comment(started, alice, "a spoiler").comment
    assert Comment.objects.get(pk=held.pk).status == "held"
    services.update_video(started, staff, state="ended")
    services.moderate_comment(Comment.objects.get(pk=removed.pk), staff, "remove")  # after the end
    body = replay(anon_client, started, from_ms=-60_000, to_ms=600_000).json()
    assert [c["id"] for c in body["results"]] == [kept.pk]
    # Restored, it is back in the replay at its own offset.
    services.moderate_comment(Comment.objects.get(pk=removed.pk), staff, "restore")
    body = replay(anon_client, started, from_ms=-60_000, to_ms=600_000).json()
    assert [c["id"] for c in body["results"]] == [kept.pk, removed.pk]


def test_it_replays_a_live_video_to_anyone_and_leaves_out_comments_without_an_offset(
    anon_client, alice_client, alice, video, started, redis
):
    services.post_comment(video, alice, "no started_at yet")  # offset null: not on the timeline
    assert replay(anon_client, video, from_ms=-(10**12), to_ms=10**12).json()["results"] == []
    comment = services.post_comment(started, alice, "live").comment
    for client in (anon_client, alice_client):
        r = replay(client, started, from_ms=0, to_ms=600_000)
        assert r.status_code == 200 and [c["id"] for c in r.json()["results"]] == [comment.pk]


@pytest.mark.parametrize(
    "params, code",
    [
        ({"to_ms": 1000}, "invalid_from_ms"),
        ({"from_ms": 0}, "invalid_to_ms"),
        ({"from_ms": 2000, "to_ms": 1000}, "invalid_range"),
        ({"from_ms": "1.5", "to_ms": 1000}, "invalid_from_ms"),
        ({"from_ms": "+1", "to_ms": 1000}, "invalid_from_ms"),
        ({"from_ms": " 1", "to_ms": 1000}, "invalid_from_ms"),
        ({"from_ms": "", "to_ms": 1000}, "invalid_from_ms"),
        ({"from_ms": "1e3", "to_ms": 1000}, "invalid_from_ms"),
        ({"from_ms": "٣", "to_ms": 1000}, "invalid_from_ms"),
        ({"from_ms": 0, "to_ms": "x"}, "invalid_to_ms"),
        ({"from_ms": 0, "to_ms": 10**12 + 1}, "invalid_to_ms"),
        ({"from_ms": -(10**13), "to_ms": 0}, "invalid_from_ms"),
        ({"from_ms": 0, "to_ms": 1000, "limit": 0}, "invalid_limit"),
        ({"from_ms": 0, "to_ms": 1000, "limit": 501}, "invalid_limit"),
        ({"from_ms": 0, "to_ms": 1000, "after": "soon"}, "invalid_cursor"),
    ],
)
def test_it_refuses_a_bad_range_with_the_error_object(anon_client, started, params, code):
    r = replay(anon_client, started, **params)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]


def test_it_answers_404_for_an_unknown_video(anon_client, db):
    r = anon_client.get("/api/v1/videos/999999/replay/", {"from_ms": 0, "to_ms": 1})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_it_takes_one_query_of_the_offset_index(anon_client, alice, started, redis):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    posted_at(started, alice, [10, 20, 30])
    with CaptureQueriesContext(connection) as queries:
        assert len(replay(anon_client, started, from_ms=0, to_ms=100).json()["results"]) == 3
    comment_queries = [q["sql"] for q in queries if "comments_comment" in q["sql"]]
    assert len(comment_queries) == 1, comment_queries
    with connection.cursor() as cursor:
        sql, params = (
            Comment.objects.visible()
            .filter(video=started, offset_ms__gte=0, offset_ms__lt=100)
            .order_by("offset_ms", "position")
            .query.sql_with_params()
        )
        explain = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        if connection.vendor == "postgresql":
            # Three rows and no statistics: PostgreSQL would sort them rather than
            # read an index in order. Priced as a busy video's would be, it uses ours.
            cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(explain + sql, params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "comment_video_offset" in plan, plan


def test_it_gives_existing_comments_their_offset_when_migrating(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("comments", "0003_origin")], [("comments", "0004_offset_ms")]
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old = MigrationExecutor(connection).loader.project_state(before).apps
        OldVideo, OldComment = old.get_model("videos", "Video"), old.get_model("comments", "Comment")
        author = old.get_model("auth", "User").objects.create(username="old")
        start = timezone.now() - timedelta(minutes=10)
        on_air = OldVideo.objects.create(title="went on air", state="ended", started_at=start)
        never = OldVideo.objects.create(title="cancelled", state="ended")
        made = [
            OldComment.objects.create(video=on_air, author=author, text="early", position=1),
            OldComment.objects.create(video=never, author=author, text="none", position=2),
        ]
        OldComment.objects.filter(pk=made[0].pk).update(created=start + timedelta(seconds=90, milliseconds=5))
        MigrationExecutor(connection).migrate(after)
        # The model as of that migration: later ones add columns it does not have yet.
        Migrated = MigrationExecutor(connection).loader.project_state(after).apps.get_model("comments", "Comment")
        assert Migrated.objects.get(pk=made[0].pk).offset_ms == 90_005
        assert Migrated.objects.get(pk=made[1].pk).offset_ms is None
    finally:
        MigrationExecutor(connection).migrate(leaves)
