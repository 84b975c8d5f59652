"""A video's pin: a comment or an announcement at the top of the chat -- the
REST API, its audit and relay, and the `pin` / `pin.cleared` events, which a
stream open sends first (the current pin, no id) before the backlog."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from comments import hotstore, services
from comments.models import Comment, ModerationAction, Pin
from comments.services import pins
from dispatcher import backlog
from livecomment.lib.errors import ServiceError
from regions import ingest
from tests.base import alice, bob, client_for, staff, video
from tests.realtime_clients import SSEClient, WSClient
from videos.models import Video


def region_kinds(redis) -> list[str]:
    return [fields["t"] for _id, fields in redis.xrange(hotstore.REGION_STREAM)]


def stream_types(video) -> list[str]:
    return [e.type for e in hotstore.read_range(video.pk, "0-0")]


def test_it_pins_a_comment_then_an_announcement_then_unpins(db, redis, video, alice, staff):
    comment = services.post_comment(video, alice, "pin me").comment
    api = client_for(staff)
    url = f"/api/v1/videos/{video.pk}/pin/"

    response = api.put(url, {"comment": comment.pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["comment"]["id"] == comment.pk and body["comment"]["cursor"] == comment.cursor
    assert (body["text"], body["by"], body["expires"]) == (None, {"id": staff.pk, "name": "staff"}, None)
    assert Pin.objects.get(video=video).cursor == body["cursor"]

    response = api.put(url, {"text": "  Giveaway at 9!  ", "duration_s": 600}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["comment"], body["text"]) == (None, "Giveaway at 9!")  # replaces the comment's pin
    expires = timezone.datetime.fromisoformat(body["expires"])
    assert timedelta(seconds=590) < expires - timezone.now() <= timedelta(seconds=600)
    assert Pin.objects.filter(video=video).count() == 1

    assert api.delete(url).status_code == 204
    assert not Pin.objects.filter(video=video).exists()
    missing = api.delete(url)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")

    actions = list(ModerationAction.objects.filter(video=video).order_by("id").values_list("action", flat=True))
    assert actions == ["pin", "pin", "unpin"]
    assert stream_types(video) == ["comment", "pin", "pin", "pin.cleared"]
    assert region_kinds(redis)[-3:] == ["pin", "pin", "unpin"]  # relayed like every moderator action


def test_it_refuses_bad_pins_with_error_objects(db, redis, video, alice, bob, staff):
    visible = services.post_comment(video, alice, "fine").comment
    removed = services.post_comment(video, alice, "gone").comment
    services.remove_comment(removed, alice)
    elsewhere = services.post_comment(Video.objects.create(title="Other", state="live"), alice, "x").comment
    api = client_for(staff)
    url = f"/api/v1/videos/{video.pk}/pin/"
    cases = [
        ({}, 400, "invalid_pin"),
        ({"comment": visible.pk, "text": "both"}, 400, "invalid_pin"),
        ({"comment": visible.pk, "duration_s": 60}, 400, "invalid_pin"),
        ({"text": "x", "colour": "red"}, 400, "unknown_fields"),
        ({"comment": "7"}, 400, "invalid_comment"),
        ({"comment": True}, 400, "invalid_comment"),
        ({"text": ""}, 400, "empty_text"),
        ({"text": 5}, 400, "invalid_text"),
        ({"text": "x" * 10_000}, 400, "too_long"),
        ({"text": "x", "duration_s": 0}, 400, "invalid_duration"),
        ({"text": "x", "duration_s": pins.PIN_MAX_SECONDS + 1}, 400, "invalid_duration"),
        ({"text": "x", "duration_s": 1.5}, 400, "invalid_duration"),
        ({"comment": removed.pk}, 409, "invalid_state"),
        ({"comment": elsewhere.pk}, 404, "not_found"),
        ({"comment": 2**40}, 404, "not_found"),
    ]
    for body, status, code in cases:
        response = api.put(url, body, format="json")
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    assert api.put(url, [1], format="json").json()["error"]["code"] == "invalid_body"
    assert client_for(bob).put(url, {"text": "mine now"}, format="json").status_code == 403
    assert client_for(bob).delete(url).status_code == 403
    assert not Pin.objects.exists()
    assert not ModerationAction.objects.filter(action="pin").exists()


def test_it_unpins_a_comment_that_is_removed(db, redis, video, alice, staff):
    comment = services.post_comment(video, alice, "pinned, then rude").comment
    other = services.post_comment(video, alice, "another").comment
    pins.pin_comment(video, staff, comment)
    services.remove_comment(other, staff)
    assert Pin.objects.filter(video=video).exists()  # another comment's removal leaves it
    services.moderate_comment(comment, staff, "remove")
    assert not Pin.objects.filter(video=video).exists()
    assert stream_types(video)[-2:] == ["comment.removed", "pin.cleared"]
    assert ModerationAction.objects.filter(action="unpin", comment=comment).get().details["because"] == (
        "comment removed"
    )


def test_it_never_pins_a_comment_removed_since_it_was_read(db, redis, video, alice, staff):
    # The request read the comment while it was visible; a removal landed
    # before the pin's write (it found no pin to take down): the check is
    # made again under the pin's lock, or every joiner gets the removed text.
    comment = services.post_comment(video, alice, "about to go").comment
    read_before = Comment.objects.get(pk=comment.pk)
    services.moderate_comment(comment, staff, "remove")
    with pytest.raises(ServiceError) as refused:
        pins.pin_comment(video, staff, read_before)
    assert (refused.value.code, refused.value.status) == ("invalid_state", 409)
    assert pins.current_pin(video.pk) is None
    assert "pin" not in stream_types(video)


def test_it_never_resends_a_removed_comment_in_its_old_pin_event(db, redis, video, alice, staff):
    # A resume from before the pin replays the stream: the `comment` event of
    # a removed comment is dropped, and so must be the `pin` event carrying it.
    comment = services.post_comment(video, alice, "pinned, then removed").comment
    before = hotstore.last_id(video.pk)
    pins.pin_comment(video, staff, comment)
    services.moderate_comment(comment, staff, "remove")
    for moderator in (False, True):
        page = backlog.resume_page(video.pk, before, 100, moderator=moderator)
        assert [e.type for e in page.events] == ["comment.removed", "pin.cleared"]
        assert all("pinned, then removed" not in e.data for e in page.events)
    # A pin of a comment that stays visible is replayed as it was.
    kept = services.post_comment(video, alice, "still here").comment
    pins.pin_comment(video, staff, kept)
    page = backlog.resume_page(video.pk, before, 100)
    assert [e.type for e in page.events][-2:] == ["comment", "pin"]


def test_it_counts_an_expired_pin_as_none(db, redis, video, staff):
    pins.pin_announcement(video, staff, "soon over", 60)
    assert pins.current_pin(video.pk) is not None
    Pin.objects.filter(video=video).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert pins.current_pin(video.pk) is None
    response = client_for(staff).delete(f"/api/v1/videos/{video.pk}/pin/")
    assert response.status_code == 404  # ran out: nothing to take down, and no pin.cleared
    assert not Pin.objects.exists() and stream_types(video) == ["pin"]


def test_it_applies_pins_from_other_regions_without_echo(transactional_db, redis, video):
    data = {"comment": None, "text": "from afar", "expires_at": None, "by": {"region": "far", "id": 4, "name": "mo"}}
    assert ingest.ingest_remote_event("far", "100-0", "pin", video.pk, data) == "applied"
    pin = Pin.objects.get(video=video)
    assert (pin.text, pin.by.username) == ("from afar", "mo:far")
    assert json.loads(pin.data)["by"]["name"] == "mo:far"
    assert ModerationAction.objects.get(action="pin").details["origin"] == "far"
    assert ingest.ingest_remote_event("far", "101-0", "unpin", video.pk, {"by": data["by"]}) == "applied"
    assert not Pin.objects.exists()
    assert region_kinds(redis) == []  # nothing relayed back
    remote_comment = {**data, "comment": "far:99"}
    assert ingest.ingest_remote_event("far", "102-0", "pin", video.pk, remote_comment).startswith("skipped")
    assert ingest.ingest_remote_event("far", "103-0", "pin", video.pk, {**data, "text": ""}).startswith("skipped")


def first_event(client) -> dict:
    assert client.wait_until(lambda c: len(c.events) >= 1, 10)
    return client.events[0]


def test_it_sends_the_pin_live_and_first_to_joiners_across_gateways(gateways, video, alice, staff):
    one, two = gateways.start(), gateways.start()
    early = services.post_comment(video, alice, "before the pin").comment
    sse = SSEClient(one.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    ws = WSClient(two.ws_url(f"/ws/videos/{video.pk}/"))
    for client in (sse, ws):
        assert client.wait_until(lambda c: early.pk in c.comment_ids(), 10)
    assert not sse.of_type("pin") and not ws.of_type("pin")

    pin = pins.pin_announcement(video, staff, "Welcome!", 600)
    for client in (sse, ws):
        assert client.wait_until(lambda c: c.of_type("pin"), 10)
        live = client.of_type("pin")[0]
        assert (live["id"], live["data"]["cursor"], live["data"]["text"]) == (pin.cursor, pin.cursor, "Welcome!")
    resume_from = sse.last_id
    later = services.post_comment(video, alice, "after the pin").comment

    # A late joiner (SSE, WebSocket, either gateway) and a resuming viewer get the pin first, without an id.
    token = Token.objects.create(user=alice).key
    joiners = [
        SSEClient(two.url(f"/api/v1/videos/{video.pk}/stream")).wait_open(),
        WSClient(one.ws_url(f"/ws/videos/{video.pk}/")),
        SSEClient(one.url(f"/api/v1/videos/{video.pk}/stream?token={token}"), last_event_id=resume_from).wait_open(),
        SSEClient(two.url(f"/api/v1/videos/{video.pk}/stream"), last_event_id=early.cursor).wait_open(),
    ]
    for client in joiners:
        first = first_event(client)
        assert (first["event"], first.get("id"), first["data"]["cursor"]) == ("pin", None, pin.cursor)
        assert client.wait_until(lambda c: later.pk in c.comment_ids(), 10)
    resumed_before = joiners[3]
    assert [e.get("id") for e in resumed_before.of_type("pin")] == [None, pin.cursor]  # then again, in the backlog
    assert resumed_before.last_id == later.cursor  # the pin without an id did not move the resume point

    pins.unpin(video, staff)
    for client in (sse, ws, *joiners):
        assert client.wait_until(lambda c: c.of_type("pin.cleared"), 10)
    fresh = SSEClient(one.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    assert fresh.wait_until(lambda c: later.pk in c.comment_ids(), 10)
    assert not fresh.of_type("pin")  # no pin now: nothing sent first
    assert Comment.objects.filter(video=video).count() == 2
    for client in (sse, ws, *joiners, fresh):
        client.close()


def test_it_leaves_no_pin_event_behind_when_the_database_write_fails(
    transactional_db, redis, video, alice, staff, monkeypatch
):
    """Nothing half-written: the database refusing a pin (or an unpin) takes
    its stream event back, so no resume replays a pin the database never had."""
    from django.db import OperationalError

    from livecomment.lib.errors import Unavailable

    comment = services.post_comment(video, alice, "pin me").comment

    def database_gone(*args, **kwargs):
        raise OperationalError("the database went away")

    real_audit = pins._audit
    monkeypatch.setattr(pins, "_audit", database_gone)
    with pytest.raises(Unavailable):
        pins.pin_comment(video, staff, comment)
    assert stream_types(video) == ["comment"] and not Pin.objects.exists()

    monkeypatch.setattr(pins, "_audit", real_audit)
    pins.pin_comment(video, staff, comment)
    monkeypatch.setattr(pins, "_audit", database_gone)
    with pytest.raises(Unavailable):
        pins.unpin(video, staff)
    assert stream_types(video) == ["comment", "pin"] and Pin.objects.filter(video=video).exists()


def test_it_leaves_no_removal_event_behind_when_the_database_write_fails(
    transactional_db, redis, video, alice, staff, monkeypatch
):
    from django.db import OperationalError

    from comments.services import moderation
    from livecomment.lib.errors import Unavailable

    comment = services.post_comment(video, alice, "remove me").comment

    def database_gone(*args, **kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(moderation, "_audit", database_gone)
    with pytest.raises(Unavailable):
        services.remove_comment(comment, staff)
    assert stream_types(video) == ["comment"]
    comment.refresh_from_db()
    assert comment.status == Comment.Status.VISIBLE
