"""POST /api/v1/videos/<id>/comments/ and the write path behind it."""

import json

import pytest

from comments import hotstore
from comments.models import Comment
from tests.base import *
from videos.models import Video


def post(client, video, text, **headers):
    return client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": text}, format="json", **headers)


def test_it_creates_a_comment_in_the_database_and_the_stream(alice_client, alice, video, redis):
    r = post(alice_client, video, "  hello world  ")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["text"] == "hello world"
    assert body["author"] == {"id": alice.pk, "name": "alice", "roles": []}
    assert body["video"] == video.pk
    assert body["created"].endswith("Z")
    comment = Comment.objects.get(pk=body["id"])
    assert comment.cursor == body["cursor"] and comment.position is not None
    entries = redis.xrange(hotstore.stream_key(video.pk))
    assert [e[0] for e in entries] == [body["cursor"]]
    assert json.loads(entries[0][1]["d"])["text"] == "hello world"


def test_it_stores_a_comment_where_the_database_cannot_return_columns_from_insert(alice_client, video, monkeypatch):
    # SQLite before 3.35 (Django 5.2 supports 3.31: Ubuntu 20.04 has 3.31,
    # Debian 11 3.34) has no INSERT ... RETURNING; the ORM then asks for the
    # last inserted id, and so must the write path's own INSERT.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL always has RETURNING")
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    with CaptureQueriesContext(connection) as queries:
        r = post(alice_client, video, "on an older SQLite")
    assert r.status_code == 201, r.content
    assert Comment.objects.get(pk=r.json()["id"]).text == "on an older SQLite"
    assert not [q["sql"] for q in queries if "RETURNING" in q["sql"].upper()]


def test_it_keeps_text_as_given(alice_client, video):
    text = "<script>alert('x')</script> 🎉 ünïcødé\nsecond line"
    r = post(alice_client, video, text)
    assert r.status_code == 201
    assert r.json()["text"] == text
    assert Comment.objects.get().text == text


def test_it_requires_authentication(anon_client, video):
    r = post(anon_client, video, "hi")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"
    assert not Comment.objects.exists()


def test_it_rejects_a_bad_token(video, db):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token nope")
    r = post(client, video, "hi")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "authentication_failed"


def test_it_answers_404_for_a_missing_video(alice_client, db):
    r = alice_client.post("/api/v1/videos/999/comments/", {"text": "hi"}, format="json")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_it_rejects_invalid_json(alice_client, video):
    r = alice_client.post(f"/api/v1/videos/{video.pk}/comments/", data=b'{"text": ', content_type="application/json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"text": ""}, "empty_text"),
        ({"text": "   \n  "}, "empty_text"),
        ({"text": "x" * 501}, "too_long"),
        ({"text": "a\x00b"}, "control_characters"),
        ({"text": "a\x07b"}, "control_characters"),
        ({"text": 5}, "invalid_text"),
        ({"text": None}, "invalid_text"),
        ({"text": ["a"]}, "invalid_text"),
        ({}, "missing_text"),
    ],
)
def test_it_rejects_bad_text(alice_client, video, payload, code):
    r = alice_client.post(f"/api/v1/videos/{video.pk}/comments/", payload, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]
    assert not Comment.objects.exists()


def test_it_rejects_a_json_array_body(alice_client, video):
    r = alice_client.post(f"/api/v1/videos/{video.pk}/comments/", ["hi"], format="json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_body"


def test_it_accepts_exactly_500_characters(alice_client, video):
    assert post(alice_client, video, "é" * 500).status_code == 201


@pytest.mark.parametrize("state", [Video.State.ENDED, Video.State.SCHEDULED])
def test_it_refuses_comments_when_the_video_is_not_live(alice_client, video, state):
    video.state = state
    video.save()
    r = post(alice_client, video, "hi")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "video_not_live"


def test_it_refuses_comments_when_disabled(alice_client, video):
    video.comments_enabled = False
    video.save()
    r = post(alice_client, video, "hi")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "comments_disabled"


def test_it_rejects_the_same_text_twice(alice_client, bob_client, video):
    assert post(alice_client, video, "same").status_code == 201
    r = post(alice_client, video, "same")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "duplicate"
    assert post(bob_client, video, "same").status_code == 201  # another user may
    assert Comment.objects.count() == 2


def test_it_returns_the_original_for_a_repeated_idempotency_key(alice_client, video):
    first = post(alice_client, video, "once", HTTP_IDEMPOTENCY_KEY="k-1")
    again = post(alice_client, video, "once", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Comment.objects.count() == 1


def test_it_refuses_a_repeated_idempotency_key_with_another_body_and_writes_nothing(alice_client, video, redis):
    first = post(alice_client, video, "once", HTTP_IDEMPOTENCY_KEY="k-3")
    stream_before = redis.xrange(hotstore.stream_key(video.pk))
    other = post(alice_client, video, "something else", HTTP_IDEMPOTENCY_KEY="k-3")
    assert other.status_code == 422
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused" and error["message"]
    assert list(Comment.objects.values_list("text", flat=True)) == ["once"]
    assert redis.xrange(hotstore.stream_key(video.pk)) == stream_before
    # Nothing was taken for it either: the text is still free to post under a new key,
    # and the key still answers its own body with the original.
    assert post(alice_client, video, "once", HTTP_IDEMPOTENCY_KEY="k-3").json() == first.json()
    assert post(alice_client, video, "something else", HTTP_IDEMPOTENCY_KEY="k-4").status_code == 201


def test_it_compares_the_body_as_stored_when_redis_forgot_the_key(alice_client, video, redis):
    # A key whose Redis value is the in-flight marker of an older process (or
    # lost the id): the original is found in the database and compared there.
    first = post(alice_client, video, "  once  ", HTTP_IDEMPOTENCY_KEY="k-5")
    for key in redis.scan_iter("idem:*"):
        redis.set(key, "")
    assert post(alice_client, video, "once", HTTP_IDEMPOTENCY_KEY="k-5").json() == first.json()  # same once cleaned
    assert post(alice_client, video, "twice", HTTP_IDEMPOTENCY_KEY="k-5").status_code == 422
    assert Comment.objects.count() == 1


def test_it_finds_the_original_in_the_database_when_redis_forgot_the_key(alice_client, video, redis):
    first = post(alice_client, video, "once", HTTP_IDEMPOTENCY_KEY="k-2")
    for key in redis.scan_iter("idem:*"):
        redis.set(key, "")  # as if the first request were still in flight, id unknown
    again = post(alice_client, video, "once", HTTP_IDEMPOTENCY_KEY="k-2")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


def test_it_rejects_an_overlong_idempotency_key(alice_client, video):
    r = post(alice_client, video, "hi", HTTP_IDEMPOTENCY_KEY="k" * 300)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_idempotency_key"


def test_it_throttles_posting_per_user(alice_client, bob_client, video, settings):
    settings.THROTTLE_POST_RATE = "2/min"
    assert post(alice_client, video, "one").status_code == 201
    assert post(alice_client, video, "two").status_code == 201
    r = post(alice_client, video, "three")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "throttled"
    assert int(r["Retry-After"]) >= 1
    assert post(bob_client, video, "bob's first").status_code == 201


def test_it_throttles_anonymous_reads_per_ip(anon_client, alice_client, video, settings):
    settings.THROTTLE_ANON_RATE = "2/min"
    url = f"/api/v1/videos/{video.pk}/comments/"
    ip = "203.0.113.7"
    assert anon_client.get(url, REMOTE_ADDR=ip).status_code == 200
    assert anon_client.get(url, REMOTE_ADDR=ip).status_code == 200
    r = anon_client.get(url, REMOTE_ADDR=ip)
    assert r.status_code == 429
    assert "Retry-After" in r
    # Another address has its own budget.
    assert anon_client.get(url, REMOTE_ADDR="203.0.113.8").status_code == 200
    # Signed-in users behind the same IP are not limited by it.
    for _ in range(4):
        assert alice_client.get(url, REMOTE_ADDR=ip).status_code == 200
    # Loopback (RATE_LIMIT_EXEMPT_IPS: a local proxy) is not limited per IP.
    for _ in range(4):
        assert anon_client.get(url, REMOTE_ADDR="127.0.0.1").status_code == 200


def test_it_enforces_slow_mode(alice_client, video, staff):
    video.slow_mode_seconds = 30
    video.save()
    assert post(alice_client, video, "first").status_code == 201
    r = post(alice_client, video, "second")
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "slow_mode"
    assert 1 <= int(r["Retry-After"]) <= 30
    from tests.base import client_for

    staff_client = client_for(staff)
    assert post(staff_client, video, "mods are exempt").status_code == 201
    assert post(staff_client, video, "still exempt").status_code == 201
