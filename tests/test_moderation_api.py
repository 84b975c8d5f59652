"""Moderation through the API: who may do what, and what each action does."""

import pytest
from django.utils import timezone

from comments import services
from comments.models import Ban, BlockedTerm, Comment, ModerationAction, Report
from tests.base import alice, bob, client_for, make_user, staff, video
from videos.models import Video

# -- the permission matrix -----------------------------------------------------------

ROLES = ["anonymous", "viewer", "author", "other_video_moderator", "video_moderator", "staff"]


@pytest.fixture
def world(db, video, alice, bob, staff):
    other_video = Video.objects.create(title="Other", state=Video.State.LIVE)
    other_mod = make_user("othermod")
    other_video.moderators.add(other_mod)
    video_mod = make_user("videomod")
    video.moderators.add(video_mod)
    users = {
        "anonymous": None,
        "viewer": bob,
        "author": alice,
        "other_video_moderator": other_mod,
        "video_moderator": video_mod,
        "staff": staff,
    }
    return users


def fresh_comment(video, author, text="a comment", status=None):
    comment = services.post_comment(video, author, text).comment
    if status == "removed":
        services.remove_comment(comment, author)
    comment.refresh_from_db()
    return comment


ALLOWED_MODERATE = {"video_moderator", "staff"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["remove", "restore", "approve"])
def test_it_lets_only_moderators_of_the_video_moderate(world, video, alice, role, action):
    if action == "approve":
        BlockedTerm.objects.create(term="held-word", action="hold", video=video)
        services.rules._terms_cache.clear()
        comment = fresh_comment(video, alice, "held-word here")
        assert comment.status == Comment.Status.HELD
    elif action == "restore":
        comment = fresh_comment(video, alice, status="removed")
    else:
        comment = fresh_comment(video, alice)
    client = client_for(world[role])
    r = client.post(f"/api/v1/comments/{comment.pk}/moderate/", {"action": action, "reason": "r"}, format="json")
    if role == "anonymous":
        assert r.status_code == 401
    elif role in ALLOWED_MODERATE:
        assert r.status_code == 200, r.content
        assert r.json()["status"] == ("removed" if action == "remove" else "visible")
        assert ModerationAction.objects.filter(action=action, comment=comment).count() == 1
    else:
        assert r.status_code == 403, r.content
        assert r.json()["error"]["code"] == "permission_denied"
        comment.refresh_from_db()
        assert comment.status != ("removed" if action == "remove" else "visible")


@pytest.mark.parametrize("role", ROLES)
def test_it_lets_only_moderators_ban_and_unban(world, video, bob, role):
    target = make_user("troll")
    client = client_for(world[role])
    r = client.post(f"/api/v1/videos/{video.pk}/bans/", {"user": target.pk, "duration_seconds": 600}, format="json")
    listing = client.get(f"/api/v1/videos/{video.pk}/bans/")
    if role == "anonymous":
        assert r.status_code == 401 and listing.status_code == 401
        return
    if role not in ALLOWED_MODERATE:
        assert r.status_code == 403 and listing.status_code == 403
        assert not Ban.objects.exists()
        return
    assert r.status_code == 201, r.content
    assert r.json()["user"] == {"id": target.pk, "name": "troll"}
    assert [b["user"]["id"] for b in listing.json()["results"]] == [target.pk]
    r = client.delete(f"/api/v1/videos/{video.pk}/bans/{target.pk}/")
    assert r.status_code == 204
    assert client.get(f"/api/v1/videos/{video.pk}/bans/").json()["results"] == []
    assert list(ModerationAction.objects.values_list("action", flat=True).order_by("id")) == ["timeout", "unban"]


@pytest.mark.parametrize("role", ROLES)
def test_it_lets_only_moderators_change_the_video(world, video, role):
    client = client_for(world[role])
    r = client.patch(f"/api/v1/videos/{video.pk}/", {"slow_mode_seconds": 10, "comments_enabled": False}, format="json")
    video.refresh_from_db()
    if role in ALLOWED_MODERATE:
        assert r.status_code == 200, r.content
        assert (video.slow_mode_seconds, video.comments_enabled) == (10, False)
        assert {a.action for a in ModerationAction.objects.all()} == {"slow_mode_seconds", "comments_enabled"}
    else:
        assert r.status_code == (401 if role == "anonymous" else 403)
        assert (video.slow_mode_seconds, video.comments_enabled) == (0, True)


@pytest.mark.parametrize("role", ROLES)
def test_it_lets_any_signed_in_user_report_once(world, video, alice, role):
    comment = fresh_comment(video, alice)
    client = client_for(world[role])
    r = client.post(f"/api/v1/comments/{comment.pk}/report/", {"reason": "rude"}, format="json")
    if role == "anonymous":
        assert r.status_code == 401
        return
    assert r.status_code == 201, r.content
    again = client.post(f"/api/v1/comments/{comment.pk}/report/", {"reason": "still rude"}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_reported"
    assert Report.objects.filter(comment=comment).count() == 1


@pytest.mark.parametrize("role", ROLES)
def test_it_shows_the_log_and_held_queue_to_moderators_only(world, video, role):
    client = client_for(world[role])
    for path in (f"/api/v1/videos/{video.pk}/moderation-log/", f"/api/v1/videos/{video.pk}/held/"):
        r = client.get(path)
        expected = 200 if role in ALLOWED_MODERATE else (401 if role == "anonymous" else 403)
        assert r.status_code == expected, (path, r.content)


# -- what the actions do -----------------------------------------------------------------


def test_it_refuses_banned_users_with_when_the_ban_ends(video, alice, staff):
    services.ban_user(video, alice, staff, 600, "cool down")
    r = client_for(alice).post(f"/api/v1/videos/{video.pk}/comments/", {"text": "let me in"}, format="json")
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "banned"
    assert error["ends_at"].endswith("Z")
    assert 590 <= error["retry_after"] <= 600
    assert not Comment.objects.exists()


def test_it_says_a_permanent_ban_does_not_end(video, alice, staff):
    services.ban_user(None, alice, staff, None, "spam")  # site-wide
    r = client_for(alice).post(f"/api/v1/videos/{video.pk}/comments/", {"text": "hello"}, format="json")
    assert r.status_code == 403
    assert r.json()["error"]["ends_at"] is None


def test_it_applies_only_the_bans_that_hold_and_names_the_longest(video, alice, bob, staff):
    other = Video.objects.create(title="Other", state=Video.State.LIVE)
    services.ban_user(other, alice, staff, None)  # another video: does not count here
    services.ban_user(video, bob, staff, 600)  # another user
    assert services.active_ban(video, alice) is None
    services.ban_user(video, alice, staff, 600)
    assert services.active_ban(video, alice).expires_at is not None
    services.ban_user(None, alice, staff, None)  # site-wide, for good: the longest
    ban = services.active_ban(video, alice)
    assert (ban.video_id, ban.expires_at) == (None, None)
    services.lift_ban(None, alice, staff)
    assert services.active_ban(video, alice).video_id == video.pk
    services.lift_ban(video, alice, staff)
    assert services.active_ban(video, alice) is None
    assert services.active_ban(other, alice).video_id == other.pk


def test_it_lets_a_time_out_expire(video, alice, staff, monkeypatch):
    services.ban_user(video, alice, staff, 600)
    client = client_for(alice)
    assert client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": "early"}, format="json").status_code == 403
    later = timezone.now() + timezone.timedelta(seconds=601)
    monkeypatch.setattr(timezone, "now", lambda: later)  # move the clock past the time-out
    assert client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": "later"}, format="json").status_code == 201


def test_it_holds_comments_with_hold_terms_and_shows_them_to_moderators_only(video, alice, bob, staff):
    BlockedTerm.objects.create(term="SpOiLeR", action="hold")
    services.rules._terms_cache.clear()
    r = client_for(alice).post(f"/api/v1/videos/{video.pk}/comments/", {"text": "big spoiler ahead"}, format="json")
    assert r.status_code == 201
    assert r.json()["status"] == "held"  # the author's own comment returns its status
    held_id = r.json()["id"]
    for viewer in (None, bob):
        page = client_for(viewer).get(f"/api/v1/videos/{video.pk}/comments/").json()
        assert page["results"] == []
        assert client_for(viewer).get(f"/api/v1/videos/{video.pk}/comments/?after=0-0").json()["results"] == []
        assert client_for(viewer).get(f"/api/v1/comments/{held_id}/").status_code == 404
    assert client_for(alice).get(f"/api/v1/comments/{held_id}/").json()["status"] == "held"
    assert [c["id"] for c in client_for(staff).get(f"/api/v1/videos/{video.pk}/held/").json()["results"]] == [held_id]
    # Approved: now everyone sees it, at its original place in the history.
    client_for(staff).post(f"/api/v1/comments/{held_id}/moderate/", {"action": "approve"}, format="json")
    assert [c["id"] for c in client_for(bob).get(f"/api/v1/videos/{video.pk}/comments/").json()["results"]] == [held_id]


def test_it_rejects_comments_with_reject_terms(video, alice):
    BlockedTerm.objects.create(term=r"buy\s+now", regex=True, action="reject", video=video)
    services.rules._terms_cache.clear()
    r = client_for(alice).post(f"/api/v1/videos/{video.pk}/comments/", {"text": "BUY   NOW cheap"}, format="json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "blocked_term"
    assert not Comment.objects.exists()


def test_it_exempts_moderators_from_terms_and_slow_mode(video, staff):
    BlockedTerm.objects.create(term="spoiler", action="reject")
    services.rules._terms_cache.clear()
    video.slow_mode_seconds = 60
    video.save()
    client = client_for(staff)
    assert (
        client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": "spoiler policy: none"}, format="json").status_code
        == 201
    )
    assert client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": "second"}, format="json").status_code == 201


def test_it_removes_recent_comments_with_a_ban_when_asked(video, alice, staff):
    comments = [services.post_comment(video, alice, f"spam {i}").comment for i in range(3)]
    r = client_for(staff).post(
        f"/api/v1/videos/{video.pk}/bans/",
        {"user": "alice", "duration_seconds": None, "remove_comments": True},
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["expires_at"] is None
    assert set(Comment.objects.values_list("status", flat=True)) == {"removed"}
    assert ModerationAction.objects.filter(action="remove").count() == len(comments)
    assert ModerationAction.objects.filter(action="ban").count() == 1


def test_it_rejects_bad_moderation_input(video, alice, staff):
    comment = services.post_comment(video, alice, "x").comment
    client = client_for(staff)
    cases = [
        (
            client.post(f"/api/v1/comments/{comment.pk}/moderate/", {"action": "explode"}, format="json"),
            400,
            "invalid_action",
        ),
        (client.post(f"/api/v1/comments/{comment.pk}/moderate/", ["remove"], format="json"), 400, "invalid_body"),
        (
            client.post(f"/api/v1/comments/{comment.pk}/moderate/", {"action": "approve"}, format="json"),
            409,
            "invalid_state",
        ),
        (client.post("/api/v1/comments/999/moderate/", {"action": "remove"}, format="json"), 404, "not_found"),
        (client.post(f"/api/v1/videos/{video.pk}/bans/", {"duration_seconds": 5}, format="json"), 400, "missing_user"),
        (client.post(f"/api/v1/videos/{video.pk}/bans/", {"user": 999}, format="json"), 404, "user_not_found"),
        (
            client.post(f"/api/v1/videos/{video.pk}/bans/", {"user": alice.pk, "duration_seconds": -5}, format="json"),
            400,
            "invalid_duration",
        ),
        (
            client.post(
                f"/api/v1/videos/{video.pk}/bans/", {"user": alice.pk, "duration_seconds": "10"}, format="json"
            ),
            400,
            "invalid_duration",
        ),
        (client.post(f"/api/v1/videos/{video.pk}/bans/", {"user": staff.pk}, format="json"), 400, "invalid_target"),
        (client.delete(f"/api/v1/videos/{video.pk}/bans/{alice.pk}/"), 404, "not_found"),
        (
            client.patch(f"/api/v1/videos/{video.pk}/", {"slow_mode_seconds": -1}, format="json"),
            400,
            "invalid_slow_mode",
        ),
        (
            client.patch(f"/api/v1/videos/{video.pk}/", {"slow_mode_seconds": True}, format="json"),
            400,
            "invalid_slow_mode",
        ),
        (client.patch(f"/api/v1/videos/{video.pk}/", {"state": "paused"}, format="json"), 400, "invalid_state"),
        (
            client.patch(f"/api/v1/videos/{video.pk}/", {"comments_enabled": "no"}, format="json"),
            400,
            "invalid_comments_enabled",
        ),
        (client.patch(f"/api/v1/videos/{video.pk}/", {"title": "mine now"}, format="json"), 400, "unknown_fields"),
        (client.post(f"/api/v1/comments/{comment.pk}/report/", {"reason": 5}, format="json"), 400, "invalid_reason"),
    ]
    for response, status, code in cases:
        assert response.status_code == status, (code, response.content)
        assert response.json()["error"]["code"] == code
    assert not Ban.objects.exists()
    video.refresh_from_db()
    assert video.slow_mode_seconds == 0 and video.title != "mine now"


def test_it_audits_every_action(video, alice, bob, staff):
    BlockedTerm.objects.create(term="hold-me", action="hold")
    services.rules._terms_cache.clear()
    held = services.post_comment(video, alice, "hold-me please").comment
    comment = services.post_comment(video, alice, "fine").comment
    services.moderate_comment(held, staff, "approve", "ok")
    services.moderate_comment(comment, staff, "remove", "rude")
    services.moderate_comment(comment, staff, "restore", "was fine")
    services.ban_user(video, bob, staff, 600, "calm")
    services.lift_ban(video, bob, staff)
    services.update_video(video, staff, slow_mode_seconds=5, comments_enabled=False, state="ended")
    report = services.report_comment(comment, bob, "hm")
    services.resolve_report(report, staff)
    actions = list(ModerationAction.objects.order_by("id").values_list("action", flat=True))
    assert actions == [
        "approve",
        "remove",
        "restore",
        "timeout",
        "unban",
        "slow_mode_seconds",
        "comments_enabled",
        "video_state",
        "resolve_report",
    ]
    assert all(a.actor_id == staff.pk for a in ModerationAction.objects.all())
    row = ModerationAction.objects.get(action="remove")
    assert (row.comment_id, row.target_user_id, row.reason) == (comment.pk, alice.pk, "rude")
    with pytest.raises(ValueError):
        row.save()
    with pytest.raises(ValueError):
        row.delete()


# -- reports: listing and resolving through the API -----------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_it_lists_and_resolves_reports_for_moderators_only(world, video, alice, bob, role):
    comment = fresh_comment(video, alice, "report me")
    assert (
        client_for(bob).post(f"/api/v1/comments/{comment.pk}/report/", {"reason": "rude"}, format="json").status_code
        == 201
    )
    report = Report.objects.get()
    client = client_for(world[role])
    listed = client.get(f"/api/v1/videos/{video.pk}/reports/")
    resolved = client.post(f"/api/v1/reports/{report.pk}/resolve/", {"reason": "fine"}, format="json")
    report.refresh_from_db()
    if role == "anonymous":
        assert (listed.status_code, resolved.status_code) == (401, 401)
        assert not report.resolved
    elif role in ALLOWED_MODERATE:
        assert listed.status_code == 200
        [item] = listed.json()["results"]
        assert item["id"] == report.pk and item["reason"] == "rude" and item["resolved"] is False
        assert item["comment"]["text"] == "report me" and item["comment"]["author"]["name"] == "alice"
        assert item["reporter"]["name"] == "bob"
        assert resolved.status_code == 200, resolved.content
        assert resolved.json()["resolved"] is True
        assert resolved.json()["resolved_by"]["id"] == world[role].pk
        assert report.resolved and report.resolved_by == world[role]
        assert ModerationAction.objects.filter(action="resolve_report", comment=comment).count() == 1
        # Resolved: gone from the open queue, in the resolved one.
        assert client.get(f"/api/v1/videos/{video.pk}/reports/").json()["results"] == []
        assert [r["id"] for r in client.get(f"/api/v1/videos/{video.pk}/reports/?resolved=1").json()["results"]] == [
            report.pk
        ]
    else:
        assert (listed.status_code, resolved.status_code) == (403, 403)
        assert resolved.json()["error"]["code"] == "permission_denied"
        assert not report.resolved


def test_it_refuses_bad_report_requests_with_a_clear_error(video, alice, bob, staff):
    comment = fresh_comment(video, alice)
    client_for(bob).post(f"/api/v1/comments/{comment.pk}/report/", {}, format="json")
    report = Report.objects.get()
    client = client_for(staff)
    cases = [
        (client.get(f"/api/v1/videos/{video.pk}/reports/?resolved=maybe"), 400, "invalid_resolved"),
        (client.get("/api/v1/videos/999999/reports/"), 404, "not_found"),
        (client.post("/api/v1/reports/999999/resolve/", {}, format="json"), 404, "not_found"),
        (client.post(f"/api/v1/reports/{report.pk}/resolve/", [1], format="json"), 400, "invalid_body"),
        (client.post(f"/api/v1/reports/{report.pk}/resolve/", {"reason": 5}, format="json"), 400, "invalid_reason"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.content
    report.refresh_from_db()
    assert not report.resolved
    # Resolving twice is harmless: one audit row.
    for _ in range(2):
        assert client.post(f"/api/v1/reports/{report.pk}/resolve/", {}, format="json").status_code == 200
    assert ModerationAction.objects.filter(action="resolve_report").count() == 1
