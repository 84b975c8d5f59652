"""Several comments written as one batch (services.post_comments, the group
commit's write): each draft gets its own answer, the stores see one write.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from comments import hotstore, services
from comments.models import Ban, Comment
from livecomment.lib.errors import ServiceError
from tests.base import *
from tests.base import make_user
from videos.models import Video


@pytest.fixture(autouse=True)
def no_fail_points():
    services.store.FAIL_POINTS.clear()
    yield
    services.store.FAIL_POINTS.clear()


def drafts_of(users, prefix="hello"):
    return [services.Draft(user, f"{prefix} from {user.username}") for user in users]


def stream_ids(redis, video) -> list[str]:
    return [entry_id for entry_id, _ in redis.xrange(hotstore.stream_key(video.pk))]


def test_it_writes_a_batch_with_as_many_statements_as_one_comment(video, redis):
    few = [make_user(f"few{i}") for i in range(2)]
    many = [make_user(f"many{i}") for i in range(20)]

    def statements(users):
        with CaptureQueriesContext(connection) as queries:
            outcomes = services.post_comments(video, drafts_of(users))
        assert all(isinstance(o, services.PostResult) and o.created for o in outcomes), outcomes
        # "20 times: UPDATE ...": one executemany, one round trip (psycopg's pipeline mode).
        return [re.sub(r"^\d+ times: ", "", q["sql"]).split()[0].upper() for q in queries]

    statements([make_user("warm-up")])  # the moderators and blocked terms, cached from then on
    for_few, for_many = statements(few), statements(many)
    assert for_few == for_many
    assert for_many.count("INSERT") == 1


def test_it_stores_and_appends_a_batch_in_order(video, redis, django_capture_on_commit_callbacks):
    users = [make_user(f"u{i}") for i in range(5)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcomes = services.post_comments(video, drafts_of(users))
    comments = [o.comment for o in outcomes]
    assert [c.text for c in comments] == [f"hello from u{i}" for i in range(5)]
    assert stream_ids(redis, video) == [c.cursor for c in comments]
    stored = list(Comment.objects.in_stream().filter(video=video).order_by("position"))
    assert [c.pk for c in stored] == [c.pk for c in comments]
    assert len(callbacks) == 1  # one publish of the whole batch, after the commit


def test_it_gives_each_draft_its_own_answer(video, redis, alice, bob, staff):
    banned = make_user("banned")
    Ban.objects.create(user=banned, video=video)
    drafts = [
        services.Draft(alice, "first"),
        services.Draft(alice, ""),  # empty
        services.Draft(banned, "let me in"),
        services.Draft(bob, "same twice"),
        services.Draft(bob, "same twice"),  # the same text from the same user, in the same batch
        services.Draft(alice, "keyed", "k-1"),
        services.Draft(alice, "keyed", "k-1"),  # the same Idempotency-Key in the same batch
        services.Draft(AnonymousUser(), "who am I"),
        services.Draft(staff, "last"),
    ]
    outcomes = services.post_comments(video, drafts)
    codes = [o.code if isinstance(o, ServiceError) else o.created for o in outcomes]
    assert codes == [True, "empty_text", "banned", True, "duplicate", True, False, "not_authenticated", True]
    assert outcomes[6].comment.pk == outcomes[5].comment.pk
    written = [outcomes[i].comment for i in (0, 3, 5, 8)]
    assert stream_ids(redis, video) == [c.cursor for c in written]
    assert [c.text for c in Comment.objects.filter(video=video).order_by("position")] == [
        "first",
        "same twice",
        "keyed",
        "last",
    ]


def test_it_answers_a_failed_write_to_every_draft_of_its_key_in_a_batch(transactional_db, video, redis, alice):
    """Two drafts with one Idempotency-Key and different bodies in one batch,
    and the first one's write fails: nothing holds the key (its reservation was
    given back), so the second is told the write failed (503, retry), not that
    the key was already used (422) -- it was not, and a retry is accepted."""

    def fail():
        raise DatabaseError("disk I/O error (injected)")

    services.store.FAIL_POINTS["before_commit"] = fail
    outcomes = services.post_comments(
        video, [services.Draft(alice, "first", "k-9"), services.Draft(alice, "second", "k-9")]
    )
    assert [(o.code, o.status) for o in outcomes] == [("database_unavailable", 503)] * 2
    services.store.FAIL_POINTS.clear()
    retried = services.post_comments(video, [services.Draft(alice, "second", "k-9")])
    assert retried[0].created and retried[0].comment.text == "second"


def test_it_refuses_an_idempotency_key_reused_with_another_body_in_a_batch_and_after_it(video, redis, alice):
    drafts = [
        services.Draft(alice, "keyed", "k-1"),
        services.Draft(alice, "not the same", "k-1"),  # the same key, another body, in the same batch
        services.Draft(alice, "keyed", "k-1"),
    ]
    outcomes = services.post_comments(video, drafts)
    assert outcomes[0].created and outcomes[2].comment.pk == outcomes[0].comment.pk and not outcomes[2].created
    assert isinstance(outcomes[1], ServiceError)
    assert (outcomes[1].code, outcomes[1].status) == ("idempotency_key_reused", 422)
    later = services.post_comments(
        video, [services.Draft(alice, "changed", "k-1"), services.Draft(alice, "keyed", "k-1")]
    )
    assert [getattr(o, "code", None) for o in later] == ["idempotency_key_reused", None]
    assert later[1].comment.pk == outcomes[0].comment.pk
    assert [c.text for c in Comment.objects.filter(video=video)] == ["keyed"]
    assert stream_ids(redis, video) == [outcomes[0].comment.cursor]


def test_it_fails_the_whole_batch_and_leaves_nothing_when_the_database_fails(video, redis, alice, bob):
    def fail():
        raise DatabaseError("disk I/O error (injected)")

    services.store.FAIL_POINTS["before_commit"] = fail
    drafts = [services.Draft(alice, "one", "key-a"), services.Draft(bob, "two"), services.Draft(alice, "")]
    outcomes = services.post_comments(video, drafts)
    assert [o.code for o in outcomes] == ["database_unavailable", "database_unavailable", "empty_text"]
    assert not Comment.objects.filter(video=video).exists()
    assert stream_ids(redis, video) == []

    # Nothing was kept for them: the same posts go through once the database is back.
    services.store.FAIL_POINTS.clear()
    outcomes = services.post_comments(video, drafts[:2])
    assert [o.created for o in outcomes] == [True, True]
    assert stream_ids(redis, video) == [o.comment.cursor for o in outcomes]


@pytest.mark.parametrize("when", ["database", "redis"])
def test_it_leaves_nothing_when_a_store_fails_outside_a_transaction(transactional_db, when, monkeypatch):
    # Outside a test's transaction: on PostgreSQL the write takes its ids first
    # and INSERTs after the append (services.store._append_then_insert); elsewhere
    # INSERT, append, UPDATE in a transaction. Either way a failure leaves nothing.
    from livecomment.lib import redis_client

    video = Video.objects.create(title="Live", state=Video.State.LIVE)
    alice, bob = make_user("alice"), make_user("bob")
    if when == "database":

        def fail():
            raise DatabaseError("disk I/O error (injected)")

        services.store.FAIL_POINTS["before_commit"] = fail
    else:

        def redis_gone(*args, **kwargs):
            raise redis_client.UNAVAILABLE_ERRORS[0]("injected")

        monkeypatch.setattr(hotstore, "append_with_region", redis_gone)
    drafts = [services.Draft(alice, "one", "key-a"), services.Draft(bob, "two")]
    outcomes = services.post_comments(video, drafts)
    assert [o.code for o in outcomes] == [f"{when}_unavailable"] * 2
    assert not Comment.objects.filter(video=video).exists()
    client = redis_client.for_video(video.pk)
    assert client.xrange(hotstore.stream_key(video.pk)) == []

    services.store.FAIL_POINTS.clear()
    monkeypatch.undo()
    outcomes = services.post_comments(video, drafts)
    assert [o.created for o in outcomes] == [True, True]
    stored = list(Comment.objects.in_stream().filter(video=video).order_by("position"))
    assert [c.pk for c in stored] == [o.comment.pk for o in outcomes]
    assert [e[0] for e in client.xrange(hotstore.stream_key(video.pk))] == [c.cursor for c in stored]
