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
from comments.models import Comment
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
