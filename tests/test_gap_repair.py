"""Lost channel-layer messages are repaired from the stream (invariant 5)."""

import signal
import time

import httpx
import pytest
from django.test import override_settings
from rest_framework.authtoken.models import Token

from comments import events, services
from dispatcher import publisher
from tests.base import alice, video
from tests.endpoint_store import layer_settings
from tests.realtime_clients import Poster, SSEClient


def stream_url(gateway, video):
    return gateway.url(f"/api/v1/videos/{video.pk}/stream")


def test_it_repairs_dropped_messages_from_the_stream(gateways, video, alice, monkeypatch):
    gateway = gateways.start()
    client = SSEClient(stream_url(gateway, video)).wait_open()
    client.wait_until(lambda c: c.retry is not None, 5)
    real_publish = publisher.publish
    calls = {"n": 0}

    def lossy_publish(video_id, event):
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            return  # the channel layer "lost" it
        real_publish(video_id, event)

    monkeypatch.setattr(events, "publish", lossy_publish)
    posted = [services.post_comment(video, alice, f"maybe lost {i}").comment for i in range(20)]
    assert client.wait_for_comments(20, timeout=15), len(client.comments())
    time.sleep(0.3)
    assert client.comment_ids() == [c.pk for c in posted]  # nothing lost, nothing twice, in order
    stats = httpx.get(gateway.url("/gateway/stats")).json()
    assert stats["gap_repairs"] >= 1
    client.close()


def test_it_repairs_a_lost_last_message_with_the_tip_check(gateways, video, alice, monkeypatch):
    gateway = gateways.start(REALTIME_TIP_CHECK_SECONDS="0.3")
    client = SSEClient(stream_url(gateway, video)).wait_open()
    client.wait_until(lambda c: c.retry is not None, 5)
    monkeypatch.setattr(events, "publish", lambda video_id, event: None)  # every message lost
    posted = services.post_comment(video, alice, "nobody published me").comment
    assert client.wait_for_comments(1, timeout=5)
    assert client.comment_ids() == [posted.pk]
    client.close()


@pytest.mark.parametrize("capacity", [1])
def test_it_repairs_what_a_full_channel_drops(gateways, video, alice, capacity, settings):
    """channels-redis's list layer drops group messages beyond a channel's
    capacity; nothing is lost to viewers."""
    gateway = gateways.start(CHANNEL_LAYER="core", CHANNEL_LAYER_CAPACITY=capacity)
    clients = [SSEClient(stream_url(gateway, video)).wait_open() for _ in range(3)]
    for c in clients:
        c.wait_until(lambda c: c.retry is not None, 5)
    layers = layer_settings("core", capacity=capacity)
    # Freeze the gateway so its channel fills up: all but `capacity` messages are dropped.
    gateway.process.send_signal(signal.SIGSTOP)
    try:
        with override_settings(CHANNEL_LAYERS=layers):
            posted = [services.post_comment(video, alice, f"burst {i}").comment for i in range(40)]
    finally:
        gateway.process.send_signal(signal.SIGCONT)
    for client in clients:
        assert client.wait_for_comments(40, timeout=15), len(client.comments())
        assert client.comment_ids() == [c.pk for c in posted]
        client.close()
    stats = httpx.get(gateway.url("/gateway/stats")).json()
    assert stats["messages_received"] <= capacity + 1  # the rest were dropped by the layer...
    assert stats["repaired_events"] >= 40 - capacity - 1  # ...and read back from the stream


def test_it_delivers_each_event_once_when_the_same_message_arrives_twice(gateways, video, alice, monkeypatch):
    gateway = gateways.start()
    client = SSEClient(stream_url(gateway, video)).wait_open()
    client.wait_until(lambda c: c.retry is not None, 5)
    real_publish = publisher.publish

    def twice(video_id, event):
        real_publish(video_id, event)
        real_publish(video_id, event)

    monkeypatch.setattr(events, "publish", twice)
    posted = [services.post_comment(video, alice, f"echo {i}").comment for i in range(5)]
    assert client.wait_for_comments(5)
    time.sleep(0.5)
    assert client.comment_ids() == [c.pk for c in posted]
    client.close()


def test_it_keeps_stream_order_when_publishes_arrive_out_of_order(gateways, video, alice, monkeypatch):
    gateway = gateways.start()
    client = SSEClient(stream_url(gateway, video)).wait_open()
    client.wait_until(lambda c: c.retry is not None, 5)
    real_publish = publisher.publish
    held = []

    def reorder(video_id, event):
        if not held:
            held.append((video_id, event))  # the first one is late
            return
        real_publish(video_id, event)
        while held:
            real_publish(*held.pop())

    monkeypatch.setattr(events, "publish", reorder)
    posted = [services.post_comment(video, alice, f"order {i}").comment for i in range(3)]
    assert client.wait_for_comments(3)
    time.sleep(0.5)
    assert client.comment_ids() == [c.pk for c in posted]
    client.close()


def test_it_works_with_a_poster_on_another_gateway(gateways, video, alice):
    a, b = gateways.start(), gateways.start()
    client = SSEClient(stream_url(b, video)).wait_open()
    poster = Poster(a.base, Token.objects.create(user=alice).key)
    posted = [poster.post(video.pk, f"cross {i}") for i in range(10)]
    assert client.wait_for_comments(10)
    assert client.comment_ids() == [c["id"] for c in posted]
    client.close()
