"""Every moderation action reaches every viewer live; moderator-only events reach moderators only."""

import time

from rest_framework.authtoken.models import Token

from comments import services
from comments.models import BlockedTerm
from tests.base import alice, bob, staff, video
from tests.realtime_clients import SSEClient, WSClient


def open_streams(gateway, video, staff):
    token = Token.objects.create(user=staff).key
    viewer = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    viewer_ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/"))
    moderator = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream?token={token}")).wait_open()
    for client in (viewer, moderator):
        client.wait_until(lambda c: c.retry is not None, 5)
    return viewer, viewer_ws, moderator


def test_it_sends_each_action_live(gateways, video, alice, bob, staff):
    gateway = gateways.start()
    viewer, viewer_ws, moderator = open_streams(gateway, video, staff)
    BlockedTerm.objects.create(term="spoiler", action="hold", video=video)
    services.rules._terms_cache.clear()

    held = services.post_comment(video, alice, "a spoiler!").comment
    assert moderator.wait_until(lambda c: c.of_type("comment.held"), 5)
    assert moderator.of_type("comment.held")[0]["data"]["id"] == held.pk

    services.moderate_comment(held, staff, "approve")
    for client in (viewer, viewer_ws, moderator):
        assert client.wait_until(lambda c: held.pk in c.comment_ids(), 5)
    approved = viewer.comments()[-1]
    assert approved["data"]["cursor"] == held.cursor  # placed where it was posted
    assert approved["id"] != held.cursor  # ...announced at a new position

    services.moderate_comment(held, staff, "remove", "changed my mind")
    for client in (viewer, viewer_ws, moderator):
        assert client.wait_until(lambda c: c.of_type("comment.removed"), 5)
        assert client.of_type("comment.removed")[-1]["data"] == {"id": held.pk, "cursor": held.cursor}

    services.moderate_comment(held, staff, "restore")
    for client in (viewer, viewer_ws):
        assert client.wait_until(lambda c: c.comment_ids().count(held.pk) == 2, 5)

    services.update_video(video, staff, slow_mode_seconds=30, comments_enabled=False)
    services.update_video(video, staff, state="ended")
    for client in (viewer, viewer_ws, moderator):
        assert client.wait_until(lambda c: c.of_type("video.state"), 5)
        assert client.of_type("video.state")[-1]["data"]["state"] == "ended"
        settings_event = client.of_type("video.settings")[-1]["data"]
        assert (settings_event["slow_mode_seconds"], settings_event["comments_enabled"]) == (30, False)

    report = services.report_comment(held, bob, "spoilers")
    assert moderator.wait_until(lambda c: c.of_type("report.created"), 5)
    assert moderator.of_type("report.created")[0]["data"]["id"] == report.pk

    time.sleep(0.5)
    for client in (viewer, viewer_ws):
        assert client.of_type("comment.held") == []  # viewers never hear of held comments
        assert client.of_type("report.created") == []
    for client in (viewer, viewer_ws, moderator):
        client.close()


def test_it_keeps_held_comments_out_of_viewer_backlogs(gateways, video, alice, staff):
    BlockedTerm.objects.create(term="spoiler", action="hold")
    services.rules._terms_cache.clear()
    visible = services.post_comment(video, alice, "fine").comment
    held = services.post_comment(video, alice, "spoiler!").comment
    gateway = gateways.start()
    token = Token.objects.create(user=staff).key
    fresh = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    resumed = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream"), last_event_id="0-0").wait_open()
    mod = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream?token={token}")).wait_open()
    assert mod.wait_until(lambda c: c.of_type("comment.held"), 5)
    assert [e["data"]["id"] for e in mod.of_type("comment.held")] == [held.pk]
    for client in (fresh, resumed):
        assert client.wait_for_comments(1)
        time.sleep(0.3)
        assert client.comment_ids() == [visible.pk]
        assert client.of_type("comment.held") == []
    for client in (fresh, resumed, mod):
        client.close()


def test_it_removes_a_banned_users_comments_live(gateways, video, alice, staff):
    gateway = gateways.start()
    viewer, viewer_ws, moderator = open_streams(gateway, video, staff)
    posted = [services.post_comment(video, alice, f"spam {i}").comment for i in range(3)]
    assert viewer.wait_for_comments(3)
    services.ban_user(video, alice, staff, None, "spam", remove_recent=True)
    for client in (viewer, viewer_ws):
        assert client.wait_until(lambda c: len(c.of_type("comment.removed")) == 3, 5)
        assert sorted(e["data"]["id"] for e in client.of_type("comment.removed")) == [c.pk for c in posted]
    for client in (viewer, viewer_ws, moderator):
        client.close()
