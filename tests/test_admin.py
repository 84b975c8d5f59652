"""The Django admin: staff only, every action through the write path, constant query counts."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from comments import cursors, hotstore, services
from comments.models import Ban, BlockedTerm, Comment, ModerationAction, Report
from tests.base import alice, bob, make_user, staff, video


def admin_client(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def superuser():
    user = make_user("root", staff=True)
    user.is_superuser = True
    user.save()
    return user


def bulk_comments(video, author, count, base=1_800_000_000_000):
    """Rows as the write path leaves them (cursor + position), made quickly."""
    Comment.objects.bulk_create(
        Comment(
            video=video,
            author=author,
            text=f"<b>bulk</b> {i}",
            cursor=f"{base + i}-0",
            position=cursors.to_position(f"{base + i}-0"),
        )
        for i in range(count)
    )


@pytest.mark.parametrize("role", ["anonymous", "viewer", "video_moderator"])
def test_it_keeps_non_staff_out(db, video, alice, role):
    user = {"anonymous": None, "viewer": alice, "video_moderator": make_user("vm")}[role]
    if role == "video_moderator":
        video.moderators.add(user)
    comment = services.post_comment(video, make_user("author"), "hi").comment
    client = admin_client(user)
    r = client.get("/admin/comments/comment/")
    assert r.status_code == 302 and "/admin/login/" in r["Location"]
    r = client.post("/admin/comments/comment/", {"action": "remove", "_selected_action": [comment.pk]})
    assert r.status_code == 302
    comment.refresh_from_db()
    assert comment.status == "visible"


def test_it_renders_every_admin_page_for_staff(db, video, alice, bob):
    root = superuser()
    comment = services.post_comment(video, alice, "hello <i>world</i>").comment
    services.report_comment(comment, bob, "meh")
    services.ban_user(video, bob, root, 600)
    BlockedTerm.objects.create(term="spoiler")
    client = admin_client(root)
    for path in [
        "/admin/",
        "/admin/videos/video/",
        f"/admin/videos/video/{video.pk}/change/",
        "/admin/comments/comment/",
        f"/admin/comments/comment/{comment.pk}/change/",
        "/admin/comments/comment/?status__exact=visible",
        "/admin/comments/comment/?reported=open",
        f"/admin/comments/comment/?video__id__exact={video.pk}",
        "/admin/comments/comment/?q=world",
        "/admin/comments/ban/",
        "/admin/comments/blockedterm/",
        "/admin/comments/blockedterm/add/",
        "/admin/comments/report/",
        "/admin/comments/moderationaction/",
    ]:
        r = client.get(path)
        assert r.status_code == 200, path
    page = client.get("/admin/comments/comment/?q=world").content.decode()
    assert "hello &lt;i&gt;world&lt;/i&gt;" in page and "<i>world</i>" not in page


def test_it_lists_1000_comments_with_the_same_queries_as_10(db, video, alice):
    root = superuser()
    client = admin_client(root)
    bulk_comments(video, alice, 10)
    client.get("/admin/comments/comment/")  # warm caches (content types, session)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/admin/comments/comment/").status_code == 200
    bulk_comments(video, make_user("second"), 990, base=1_800_000_100_000)
    with CaptureQueriesContext(connection) as many:
        r = client.get("/admin/comments/comment/")
    assert r.status_code == 200
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    with CaptureQueriesContext(connection) as reported:
        assert client.get("/admin/comments/comment/?reported=open").status_code == 200
    assert len(reported) == len(few)


def test_its_bulk_actions_go_through_the_write_path(db, video, alice, bob, redis):
    root = superuser()
    client = admin_client(root)
    BlockedTerm.objects.create(term="hold-me", action="hold")
    services.rules._terms_cache.clear()
    a = services.post_comment(video, alice, "one").comment
    b = services.post_comment(video, bob, "two").comment
    held = services.post_comment(video, alice, "hold-me").comment

    def act(action, *comments):
        return client.post("/admin/comments/comment/", {"action": action, "_selected_action": [c.pk for c in comments]})

    assert act("remove", a, b).status_code == 302
    assert set(Comment.objects.filter(pk__in=[a.pk, b.pk]).values_list("status", flat=True)) == {"removed"}
    types = [f["t"] for _, f in redis.xrange(hotstore.stream_key(video.pk))]
    assert types.count("comment.removed") == 2  # announced like any removal
    act("restore", a)
    act("approve", held)
    assert Comment.objects.get(pk=a.pk).status == "visible"
    assert Comment.objects.get(pk=held.pk).status == "visible"
    act("timeout_author", a, held)  # same author twice: one time-out
    ban = Ban.objects.get(user=alice)
    assert 590 <= (ban.expires_at - timezone.now()).total_seconds() <= 600
    act("ban_author", b)
    assert Ban.objects.get(user=bob).expires_at is None
    actions = list(ModerationAction.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["remove", "remove", "restore", "approve", "timeout", "ban"]


def test_it_changes_video_settings_through_the_write_path(db, video, redis):
    root = superuser()
    client = admin_client(root)
    r = client.post(
        f"/admin/videos/video/{video.pk}/change/",
        {
            "title": video.title,
            "description": "",
            "stream_url": "",
            "poster_url": "",
            "state": "ended",
            "slow_mode_seconds": 15,
            "comments_enabled": "on",
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    video.refresh_from_db()
    assert (video.state, video.slow_mode_seconds) == ("ended", 15)
    assert {a.action for a in ModerationAction.objects.all()} == {"video_state", "slow_mode_seconds"}
    types = [f["t"] for _, f in redis.xrange(hotstore.stream_key(video.pk))]
    assert "video.state" in types and "video.settings" in types


def test_it_resolves_reports_and_keeps_the_log_read_only(db, video, alice, bob):
    root = superuser()
    client = admin_client(root)
    comment = services.post_comment(video, alice, "hmm").comment
    report = services.report_comment(comment, bob, "rude")
    client.post("/admin/comments/report/", {"action": "resolve", "_selected_action": [report.pk]})
    report.refresh_from_db()
    assert report.resolved and report.resolved_by == root
    row = ModerationAction.objects.get(action="resolve_report")
    assert client.get(f"/admin/comments/moderationaction/{row.pk}/change/").status_code == 200  # view only
    r = client.post(f"/admin/comments/moderationaction/{row.pk}/delete/", {"post": "yes"})
    assert r.status_code == 403
    assert ModerationAction.objects.filter(pk=row.pk).exists()
    assert Report.objects.filter(pk=report.pk).exists()


def test_it_audits_blocked_terms_made_in_the_admin(db):
    root = superuser()
    client = admin_client(root)
    r = client.post("/admin/comments/blockedterm/add/", {"term": "spoiler", "action": "hold"})
    assert r.status_code == 302
    assert BlockedTerm.objects.get().created_by == root
    assert ModerationAction.objects.get().action == "term_add"
