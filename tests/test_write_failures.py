"""Failure atomicity of the write path (issue 2, item 5).

When the database write fails, or Redis goes away in the middle of a post, the
API answers 503 with a JSON error and nothing is visible anywhere: no comment
row with a position, no stream entry, nothing in GET comments. Once the failed
store is back, the same text (and the same Idempotency-Key) is accepted.
"""

import pytest
from django.db import DatabaseError

from comments import hotstore, services, writekeys
from comments.models import Comment
from tests.base import *
from tests.base import client_for


@pytest.fixture(autouse=True)
def no_fail_points():
    services.store.FAIL_POINTS.clear()
    yield
    services.store.FAIL_POINTS.clear()


def post(client, video, text, **headers):
    return client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": text}, format="json", **headers)


def raise_database_error():
    raise DatabaseError("disk I/O error (injected)")


def assert_unavailable(r, what):
    assert r.status_code == 503, r.content
    error = r.json()["error"]
    assert error["code"] == f"{what}_unavailable"
    assert error["message"]
    assert r["Retry-After"]


def assert_nothing_visible(video, client, redis_client=None):
    assert not Comment.objects.filter(video=video).exists()
    assert not Comment.objects.in_stream().exists()
    if redis_client is not None:
        assert redis_client.xrange(hotstore.stream_key(video.pk)) == []
    r = client.get(f"/api/v1/videos/{video.pk}/comments/")
    assert r.status_code == 200, r.content
    assert r.json()["results"] == []
    r = client.get(f"/api/v1/videos/{video.pk}/comments/?after=0-0")
    assert r.json()["results"] == []


def test_it_answers_503_and_shows_nothing_when_the_database_write_fails(transactional_db, alice, video, redis):
    client = client_for(alice)
    services.store.FAIL_POINTS["before_commit"] = raise_database_error
    r = post(client, video, "lost in the database", HTTP_IDEMPOTENCY_KEY="key-1")
    assert_unavailable(r, "database")
    assert_nothing_visible(video, client, redis)

    # The reservation was given back: the retry is a new, accepted comment.
    services.store.FAIL_POINTS.clear()
    r = post(client, video, "lost in the database", HTTP_IDEMPOTENCY_KEY="key-1")
    assert r.status_code == 201, r.content
    comment = Comment.objects.get()
    assert [e[0] for e in redis.xrange(hotstore.stream_key(video.pk))] == [comment.cursor]
    # ... and the key now names it.
    again = post(client, video, "lost in the database", HTTP_IDEMPOTENCY_KEY="key-1")
    assert again.status_code == 200 and again.json()["id"] == comment.pk


def test_it_releases_slow_mode_when_the_database_write_fails(transactional_db, alice, video):
    video.slow_mode_seconds = 60
    video.save()
    client = client_for(alice)
    services.store.FAIL_POINTS["before_commit"] = raise_database_error
    assert_unavailable(post(client, video, "first try"), "database")
    services.store.FAIL_POINTS.clear()
    assert post(client, video, "second try").status_code == 201


def test_it_answers_503_when_redis_is_down(db, alice, video, separate_redis):
    client = client_for(alice)
    separate_redis.stop()
    r = post(client, video, "nobody hears this", HTTP_IDEMPOTENCY_KEY="key-2")
    assert_unavailable(r, "redis")
    # Reads still work, from the database, and show nothing.
    assert_nothing_visible(video, client)

    separate_redis.start()
    r = post(client, video, "nobody hears this", HTTP_IDEMPOTENCY_KEY="key-2")
    assert r.status_code == 201, r.content


def test_it_answers_503_when_redis_stops_between_reserve_and_append(db, alice, video, separate_redis, monkeypatch):
    real_append = hotstore.append_with_region

    def redis_dies_first(*args, **kwargs):
        separate_redis.stop()
        return real_append(*args, **kwargs)

    monkeypatch.setattr(hotstore, "append_with_region", redis_dies_first)
    client = client_for(alice)
    r = post(client, video, "half way", HTTP_IDEMPOTENCY_KEY="key-3")
    assert_unavailable(r, "redis")
    assert_nothing_visible(video, client)

    monkeypatch.setattr(hotstore, "append_with_region", real_append)
    separate_redis.start()
    assert_nothing_visible(video, client, separate_redis_client(separate_redis))
    r = post(client, video, "half way", HTTP_IDEMPOTENCY_KEY="key-3")
    assert r.status_code == 201, r.content


def let_time_pass(server, seconds):
    """Stand in for waiting: run every key's TTL down by `seconds`."""
    client = separate_redis_client(server)
    for name in client.scan_iter():
        ttl = client.ttl(name)
        if 0 < ttl <= seconds:
            client.delete(name)
        elif ttl > seconds:
            client.expire(name, ttl - seconds)


def assert_in_flight(server, video, user, key):
    assert separate_redis_client(server).get(writekeys.idem_key(video.pk, user.pk, key)) == ""


def blip_during_append(server, monkeypatch):
    """Redis goes away after reserve() and before the append, then returns
    with its keys (a restart with persistence, or a network blip)."""
    real_append = hotstore.append_with_region

    def redis_blips(*args, **kwargs):
        monkeypatch.setattr(hotstore, "append_with_region", real_append)
        server.stop()
        return real_append(*args, **kwargs)

    monkeypatch.setattr(hotstore, "append_with_region", redis_blips)


def test_it_releases_the_reservation_when_redis_comes_back(db, alice, video, persistent_separate_redis, monkeypatch):
    """The process whose write failed while Redis was away gives the keys back
    before its next write: the retry is accepted at once."""
    server = persistent_separate_redis
    blip_during_append(server, monkeypatch)
    client = client_for(alice)
    assert_unavailable(post(client, video, "blip", HTTP_IDEMPOTENCY_KEY="key-4"), "redis")
    server.start()
    assert_nothing_visible(video, client, separate_redis_client(server))
    r = post(client, video, "blip", HTTP_IDEMPOTENCY_KEY="key-4")
    assert r.status_code == 201, r.content
    again = post(client, video, "blip", HTTP_IDEMPOTENCY_KEY="key-4")
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]


def test_it_accepts_the_retry_when_redis_comes_back_with_its_keys(
    db, alice, video, persistent_separate_redis, monkeypatch
):
    """The reservation taken before Redis went away could not be released
    and the process that took it is gone; the retry with the same
    Idempotency-Key must not be refused for the key's whole lifetime (10 minutes)."""
    server = persistent_separate_redis
    blip_during_append(server, monkeypatch)
    client = client_for(alice)
    assert_unavailable(post(client, video, "blip", HTTP_IDEMPOTENCY_KEY="key-4"), "redis")
    server.start()
    services.store._pending_undos.clear()  # as if the failing process had died
    assert_nothing_visible(video, client, separate_redis_client(server))

    # Right away the key is still "in progress": the first request might be.
    r = post(client, video, "blip", HTTP_IDEMPOTENCY_KEY="key-4")
    assert r.status_code == 409 and r.json()["error"]["code"] == "request_in_progress"
    assert r["Retry-After"]

    # Once no write could still be running, the retry takes the key over.
    assert_in_flight(server, video, alice, "key-4")
    let_time_pass(server, services.posting.IN_FLIGHT_MAX_SECONDS + 1)
    r = post(client, video, "blip", HTTP_IDEMPOTENCY_KEY="key-4")
    assert r.status_code == 201, r.content
    again = post(client, video, "blip", HTTP_IDEMPOTENCY_KEY="key-4")
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    assert Comment.objects.in_stream().count() == 1


def test_it_never_takes_over_a_key_whose_comment_exists(db, alice, video, persistent_separate_redis):
    """Redis went away after the commit, before the key could name the
    comment: the retry (its response was lost, say) gets the original."""
    server = persistent_separate_redis
    services.store.FAIL_POINTS["before_commit"] = server.stop
    client = client_for(alice)
    first = post(client, video, "committed", HTTP_IDEMPOTENCY_KEY="key-6")
    assert first.status_code == 201, first.content
    services.store.FAIL_POINTS.clear()
    server.start()
    assert_in_flight(server, video, alice, "key-6")
    let_time_pass(server, services.posting.IN_FLIGHT_MAX_SECONDS + 1)
    again = post(client, video, "committed", HTTP_IDEMPOTENCY_KEY="key-6")
    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]
    assert Comment.objects.count() == 1


def test_it_accepts_the_same_text_again_when_redis_comes_back_with_its_keys(
    db, alice, video, persistent_separate_redis, monkeypatch
):
    server = persistent_separate_redis
    blip_during_append(server, monkeypatch)
    client = client_for(alice)
    assert_unavailable(post(client, video, "blip without a key"), "redis")
    server.start()
    r = post(client, video, "blip without a key")
    assert r.status_code == 201, r.content


def test_it_keeps_an_acknowledged_comment_when_redis_stops_after_the_append(db, alice, video, separate_redis):
    """Redis going away after the stream append does not undo the comment:
    it is in both stores, and the database serves it while Redis is down."""
    services.store.FAIL_POINTS["before_commit"] = separate_redis.stop
    client = client_for(alice)
    r = post(client, video, "made it", HTTP_IDEMPOTENCY_KEY="key-5")
    assert r.status_code == 201, r.content
    body = client.get(f"/api/v1/videos/{video.pk}/comments/").json()
    assert [c["id"] for c in body["results"]] == [r.json()["id"]]


def test_it_shows_nothing_when_the_database_fails_and_redis_is_gone_before_the_undo(
    transactional_db, alice, bob, video, persistent_separate_redis
):
    """Both stores fail at once: the stream entry cannot be deleted again."""
    server = persistent_separate_redis

    def both_fail():
        server.stop()
        raise_database_error()

    services.store.FAIL_POINTS["before_commit"] = both_fail
    client = client_for(alice)
    assert_unavailable(post(client, video, "double fault"), "database")
    server.start()
    services.store.FAIL_POINTS.clear()
    stream = separate_redis_client(server)
    # The next write of this process first finishes the undo it owes.
    bob_client = client_for(bob)
    later = post(bob_client, video, "after the double fault")
    assert later.status_code == 201, later.content
    assert [e[0] for e in stream.xrange(hotstore.stream_key(video.pk))] == [later.json()["cursor"]]
    assert list(Comment.objects.values_list("text", flat=True)) == ["after the double fault"]
    texts = [c["text"] for c in client.get(f"/api/v1/videos/{video.pk}/comments/?after=0-0").json()["results"]]
    assert texts == ["after the double fault"]


def separate_redis_client(server):
    import redis

    return redis.Redis.from_url(server.url, decode_responses=True)


def test_it_serves_reads_from_the_database_while_redis_is_down(db, alice, video, separate_redis):
    """Throttles count in Redis; with Redis away they let reads through (not
    a 500), and history comes from the database."""
    client = client_for(alice)
    posted = post(client, video, "before the outage")
    assert posted.status_code == 201
    separate_redis.stop()
    from rest_framework.test import APIClient

    for reader in (APIClient(), client):
        r = reader.get(f"/api/v1/videos/{video.pk}/comments/")
        assert r.status_code == 200, r.content
        assert [c["id"] for c in r.json()["results"]] == [posted.json()["id"]]
        r = reader.get(f"/api/v1/videos/{video.pk}/comments/?after={posted.json()['cursor']}")
        assert r.status_code == 200 and r.json()["results"] == []
        assert reader.get(f"/api/v1/videos/{video.pk}/").status_code == 200
        assert reader.get(f"/api/v1/comments/{posted.json()['id']}/").status_code == 200


def test_it_answers_503_to_a_delete_while_redis_is_down(db, alice, video, separate_redis):
    client = client_for(alice)
    posted = post(client, video, "to be removed").json()
    separate_redis.stop()
    r = client.delete(f"/api/v1/comments/{posted['id']}/")
    assert_unavailable(r, "redis")
    assert Comment.objects.get(pk=posted["id"]).status == Comment.Status.VISIBLE
