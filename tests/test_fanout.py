"""Fan-out across gateway processes: one message per gateway, every viewer once, in order."""

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.base import alice, staff, video
from tests.endpoint_store import member_count
from tests.realtime_clients import Poster, SSEClient, WSClient


def stream_url(gateway, video):
    return gateway.url(f"/api/v1/videos/{video.pk}/stream")


def stats(gateway):
    return httpx.get(gateway.url("/gateway/stats"), timeout=5).json()


@pytest.mark.parametrize("layer", ["pubsub", "core"])
def test_it_delivers_a_comment_to_sse_and_ws_clients_on_two_gateways(gateways, video, alice, layer):
    a, b = gateways.start(CHANNEL_LAYER=layer), gateways.start(CHANNEL_LAYER=layer)
    clients = [
        SSEClient(stream_url(a, video)).wait_open(),
        SSEClient(stream_url(b, video)).wait_open(),
        WSClient(a.ws_url(f"/ws/videos/{video.pk}/")),
        WSClient(b.ws_url(f"/ws/videos/{video.pk}/")),
    ]
    poster = Poster(a.base, Token.objects.create(user=alice).key)
    try:
        posted = [poster.post(video.pk, f"hello {i}") for i in range(5)]
        for client in clients:
            assert client.wait_for_comments(5), client.events
        expected_ids = [c["id"] for c in posted]
        expected_cursors = [c["cursor"] for c in posted]
        for client in clients:
            comments = client.comments()
            assert [c["data"]["id"] for c in comments] == expected_ids  # once each, in order
            assert [c["id"] for c in comments] == expected_cursors  # same ids everywhere
            assert [c["data"]["cursor"] for c in comments] == expected_cursors
            assert comments[0]["data"]["text"] == "hello 0"
            assert comments[0]["data"]["author"]["name"] == "alice"
    finally:
        for client in clients:
            client.close()
        poster.close()


@pytest.mark.parametrize("layer", ["pubsub", "core"])
def test_it_sends_one_message_per_gateway_not_per_viewer(gateways, video, alice, layer):
    a, b, idle = (gateways.start(CHANNEL_LAYER=layer) for _ in range(3))
    clients = [SSEClient(stream_url(g, video)).wait_open() for g in (a, a, a, b, b, b, b)]
    poster = Poster(a.base, Token.objects.create(user=alice).key)
    try:
        for i in range(3):
            poster.post(video.pk, f"count me {i}")
        for client in clients:
            assert client.wait_for_comments(3)
        received_a = stats(a)["received_by_video"].get(str(video.pk), 0)
        received_b = stats(b)["received_by_video"].get(str(video.pk), 0)
        # 3 comments -> 3 messages per gateway, however many viewers it has.
        assert received_a == 3
        assert received_b == 3
        idle_stats = stats(idle)
        assert idle_stats["received_by_video"].get(str(video.pk), 0) == 0
        assert idle_stats.get("messages_received", 0) == 0
        assert stats(a)["videos"][str(video.pk)] == 3
        assert stats(b)["videos"][str(video.pk)] == 4
    finally:
        for client in clients:
            client.close()
        poster.close()


def test_it_leaves_the_group_when_the_last_viewer_goes(gateways, video, alice, redis):
    a = gateways.start()
    client = SSEClient(stream_url(a, video)).wait_open()
    client.wait_until(lambda c: c.retry is not None, 5)
    assert member_count(redis, video.pk) == 1
    client.close()
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and member_count(redis, video.pk) != 0:
        time.sleep(0.05)
    assert member_count(redis, video.pk) == 0
    s = stats(a)
    assert s["videos"] == {}
    assert s["groups_left"] == 1


def test_it_fans_out_pins_and_badges_as_one_message_per_gateway(gateways, video, alice, staff):
    """Badges ride in the comment (decided at write time) and a pin is one
    stream event: per gateway one message each, per viewer one frame each,
    however many viewers -- nothing per viewer beyond any comment's cost."""
    from comments.services import pins

    video.owner = alice
    video.save(update_fields=["owner"])
    a = gateways.start()
    clients = [SSEClient(stream_url(a, video)).wait_open() for _ in range(4)]
    clients += [WSClient(a.ws_url(f"/ws/videos/{video.pk}/")) for _ in range(2)]
    poster = Poster(a.base, Token.objects.create(user=alice).key)
    try:
        for client in clients:
            assert client.wait_until(lambda c: c.of_type("viewers"), 5)
        before = stats(a)["received_by_video"].get(str(video.pk), 0)
        posted = poster.post(video.pk, "from the host")
        assert posted["author"]["roles"] == ["host"]
        from comments.models import Comment

        pins.pin_comment(video, staff, Comment.objects.get(pk=posted["id"]))
        for client in clients:
            assert client.wait_until(lambda c: c.of_type("pin"), 5), client.events
            assert [c["data"]["author"]["roles"] for c in client.comments()] == [["host"]]
            assert len(client.of_type("pin")) == 1
        assert stats(a)["received_by_video"][str(video.pk)] - before == 2  # the comment and the pin
    finally:
        for client in clients:
            client.close()
        poster.close()
