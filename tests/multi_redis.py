"""Scenarios that the several-Redis-hosts suite (tests/test_sharding.py) and
the Redis Cluster suite (tests/test_redis_cluster.py) both run."""

from __future__ import annotations

from comments import events, services
from dispatcher import publisher
from tests.realtime_clients import SSEClient


def check_resume_and_repair(gateway, videos, alice, monkeypatch) -> None:
    """For each video: a stream resumed with Last-Event-ID gets what it missed,
    then keeps every live comment in order while every third publish is lost
    (gap repair, and the tip check for a lost last one)."""
    real_publish = publisher.publish
    calls = {"n": 0}

    def lossy(video_id, event):
        calls["n"] += 1
        if calls["n"] % 3:
            real_publish(video_id, event)

    for video in videos:
        anchor = services.post_comment(video, alice, f"anchor {video.pk}").comment
        missed = [services.post_comment(video, alice, f"missed {video.pk} {i}").comment.pk for i in range(5)]
        resumed = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream"), last_event_id=anchor.cursor).wait_open()
        assert resumed.wait_for_comments(5)
        assert resumed.comment_ids() == missed
        monkeypatch.setattr(events, "publish", lossy)
        live = [services.post_comment(video, alice, f"live {video.pk} {i}").comment.pk for i in range(6)]
        monkeypatch.setattr(events, "publish", real_publish)
        assert resumed.wait_for_comments(11, timeout=15)
        assert resumed.comment_ids() == missed + live
        resumed.close()
