"""A hub repairs from the database what an empty restarted Redis no longer holds (invariants 1 and 5).

The state the tests drive a gateway into: a comment is acknowledged (it is in
the database and was in the stream) but its channel-layer message never
reached the gateway, and then Redis restarts without its data. The stream
that comes back cannot cover the gap; the database can.
"""

import time

import pytest

from comments import events, services
from comments.models import Comment
from tests.base import alice, bob, video
from tests.realtime_clients import SSEClient

pytestmark = pytest.mark.processes

# No tip check during the test: only the resync and the gap repair may find the lost comment.
QUIET = {"REALTIME_TIP_CHECK_SECONDS": "600", "REALTIME_REDIS_CHECK_SECONDS": "0.2"}


def open_viewer(gateway, video) -> SSEClient:
    client = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    assert client.status == 200
    assert client.wait_until(lambda c: c.retry is not None, 10)
    return client


def post_unpublished(monkeypatch, video, author, text: str, **kwargs) -> Comment:
    """An acknowledged comment whose channel-layer message is lost."""
    with monkeypatch.context() as patched:
        patched.setattr(events, "publish", lambda video_id, *published: None)
        return services.post_comment(video, author, text, **kwargs).comment


def restart_empty(redis_server) -> None:
    redis_server.stop()
    time.sleep(0.5)  # long enough for the gateway to notice that Redis is away
    redis_server.start()


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_it_delivers_a_lost_comment_on_resync_after_an_empty_restart(
    separate_redis, gateways, video, alice, monkeypatch, server
):
    gateway = gateways.start(server=server, **QUIET)
    viewer = open_viewer(gateway, video)
    first = services.post_comment(video, alice, "delivered before").comment
    assert viewer.wait_for_comments(1)
    lost = post_unpublished(monkeypatch, video, alice, "acknowledged, message lost")
    restart_empty(separate_redis)
    assert viewer.wait_until(lambda c: lost.pk in c.comment_ids(), 15), viewer.comment_ids()
    after = services.post_comment(video, alice, "after the restart").comment
    assert viewer.wait_until(lambda c: after.pk in c.comment_ids(), 15), viewer.comment_ids()
    time.sleep(0.3)
    assert viewer.comment_ids() == [first.pk, lost.pk, after.pk]  # once each, in order
    viewer.close()


def test_it_delivers_a_lost_comment_when_the_new_stream_already_has_entries(
    separate_redis, gateways, video, alice, monkeypatch
):
    """With the list layer; a comment is posted as soon as Redis is back, so
    the gateway meets the new stream either through that comment's message
    (its prev is 0-0) or in its resync (the stream starts after what it
    delivered last): both must find the lost comment in the database."""
    from django.test import override_settings

    from tests.endpoint_store import layer_settings

    gateway = gateways.start(server="uvicorn", CHANNEL_LAYER="core", **QUIET)
    with override_settings(CHANNEL_LAYERS=layer_settings("core")):
        viewer = open_viewer(gateway, video)
        lost = post_unpublished(monkeypatch, video, alice, "acknowledged, message lost")
        separate_redis.stop()
        separate_redis.start()
        after = services.post_comment(video, alice, "first of the new stream").comment
        assert viewer.wait_until(lambda c: after.pk in c.comment_ids(), 20), viewer.comment_ids()
        time.sleep(0.3)
    assert viewer.comment_ids() == [lost.pk, after.pk]
    viewer.close()


def test_it_repairs_from_the_database_with_moderator_only_events_and_removals_honoured(
    separate_redis, gateways, video, alice, bob, monkeypatch
):
    """Held comments go to moderators only; a removed one to nobody."""
    from rest_framework.authtoken.models import Token

    from comments.models import BlockedTerm

    video.moderators.add(bob)
    BlockedTerm.objects.create(video=video, term="spoiler", action=BlockedTerm.Action.HOLD)
    gateway = gateways.start(server="uvicorn", **QUIET)
    viewer = open_viewer(gateway, video)
    moderator = SSEClient(
        gateway.url(f"/api/v1/videos/{video.pk}/stream"),
        headers={"Authorization": f"Token {Token.objects.create(user=bob).key}"},
    ).wait_open()
    assert moderator.wait_until(lambda c: c.retry is not None, 10)
    held = post_unpublished(monkeypatch, video, alice, "a spoiler")
    assert held.status == Comment.Status.HELD
    removed = post_unpublished(monkeypatch, video, alice, "soon removed")
    with monkeypatch.context() as patched:
        patched.setattr(events, "publish", lambda video_id, *published: None)
        services.remove_comment(removed, bob)
    shown = post_unpublished(monkeypatch, video, alice, "shown")
    restart_empty(separate_redis)
    for client in (viewer, moderator):
        assert client.wait_until(lambda c: shown.pk in c.comment_ids(), 15), client.events
    time.sleep(0.3)
    assert viewer.comment_ids() == [shown.pk]
    assert viewer.of_type("comment.held") == []
    assert moderator.comment_ids() == [shown.pk]
    assert [e["data"]["id"] for e in moderator.of_type("comment.held")] == [held.pk]
    viewer.close()
    moderator.close()


@pytest.mark.django_db
@pytest.mark.parametrize("limit", [1, 2, 3, 500])
def test_it_pages_the_database_exactly_like_one_read(video, alice, bob, limit):
    """Pages of any size add up to the events one unbounded read rebuilds,
    status changes of comments before the start included, none twice."""
    from dispatcher import backlog

    video.moderators.add(bob)
    before = [services.post_comment(video, alice, f"before {i}").comment for i in range(3)]
    start = before[-1].cursor
    services.remove_comment(before[0], bob)
    posted = [services.post_comment(video, alice, f"after {i}").comment for i in range(7)]
    services.remove_comment(posted[2], bob)
    services.remove_comment(posted[4], bob)
    services.moderate_comment(Comment.objects.get(pk=posted[4].pk), bob, "restore")
    services.remove_comment(before[1], bob)
    end = services.post_comment(video, alice, "the stream starts here").comment.cursor
    for moderator in (False, True):
        paged, after = [], start
        while after is not None:
            page = backlog.database_page(video.pk, after, end, limit, moderator, since=start)
            paged += page.events
            after = page.last_id if page.more else None
        whole = backlog.database_page(video.pk, start, end, 10_000, moderator).events
        assert [(e.id, e.type, e.data) for e in paged] == [(e.id, e.type, e.data) for e in whole]
        assert len({e.id for e in paged}) == len(paged) > 0


@pytest.mark.django_db
def test_it_keeps_reading_when_new_comments_and_status_changes_together_overflow_a_page(video, alice, bob):
    """Neither kind fills the page alone (2 + 2 rows, pages of 3): the page is
    still full, and the fourth event comes with the next one."""
    from dispatcher import backlog

    video.moderators.add(bob)
    before = [services.post_comment(video, alice, f"before {i}").comment for i in range(2)]
    start = before[-1].cursor
    posted = [services.post_comment(video, alice, f"after {i}").comment for i in range(2)]
    for comment in before:
        services.remove_comment(comment, bob)
    first = backlog.database_page(video.pk, start, None, 3, False)
    assert first.more and len(first.events) == 3
    rest = backlog.database_page(video.pk, first.last_id, None, 3, False, since=start)
    ids = [e.id for e in first.events + rest.events]
    assert len(ids) == len(set(ids)) == 4
    assert {e.comment_id for e in first.events + rest.events if e.type == "comment"} == {c.pk for c in posted}
