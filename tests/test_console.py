"""The moderation console page (/moderation/videos/<id>/) and its report-resolving route.

Who may open it (anonymous, viewer, author, moderator of another video,
per-video moderator, staff), what it renders for them, that user text in
the page is never markup, and the one JSON route the console adds.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from comments import services
from comments.models import BlockedTerm, Comment, ModerationAction, Report
from tests.base import alice, bob, make_user, staff, video
from videos.models import Video


def page_url(video_id: int) -> str:
    return f"/moderation/videos/{video_id}/"


def resolve_url(video_id: int) -> str:
    return f"/moderation/videos/{video_id}/reports/resolve/"


def client_as(user=None, **options) -> Client:
    client = Client(**options)
    if user is not None:
        client.force_login(user)
    return client


def config_of(response) -> dict:
    """The page's JSON config, as console.js reads it."""
    html = response.content.decode()
    start = html.index('<script id="mod-config" type="application/json">') + len(
        '<script id="mod-config" type="application/json">'
    )
    end = html.index("</script>", start)
    return json.loads(html[start:end])


@pytest.fixture
def other_video(db):
    return Video.objects.create(title="Another stream", state=Video.State.LIVE)


@pytest.fixture
def carol(db, video):
    """A per-video moderator of `video`."""
    user = make_user("carol")
    video.moderators.add(user)
    return user


@pytest.fixture
def dave(db, other_video):
    """A per-video moderator of another video only."""
    user = make_user("dave")
    other_video.moderators.add(user)
    return user


# -- who may open the page -------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in_and_back(video):
    response = client_as().get(page_url(video.pk))
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/moderation/videos/{video.pk}/"


def test_a_viewer_gets_403_with_a_page_that_says_why(video, alice):
    response = client_as(alice).get(page_url(video.pk))
    assert response.status_code == 403
    assert b"Not a moderator here" in response.content
    assert b"mod-config" not in response.content


def test_an_author_of_comments_in_the_video_is_still_a_viewer(video, alice):
    services.post_comment(video, alice, "first!")
    assert client_as(alice).get(page_url(video.pk)).status_code == 403


def test_a_moderator_of_another_video_gets_403(video, dave, other_video):
    assert client_as(dave).get(page_url(video.pk)).status_code == 403
    assert client_as(dave).get(page_url(other_video.pk)).status_code == 200


def test_a_per_video_moderator_gets_the_console(video, carol):
    response = client_as(carol).get(page_url(video.pk))
    assert response.status_code == 200
    assert "moderation/console.html" in [t.name for t in response.templates]
    assert b"/static/js/console.js" in response.content
    assert b"/static/css/console.css" in response.content
    config = config_of(response)
    assert config["videoId"] == video.pk
    assert config["user"] == {"id": carol.pk, "name": "carol", "staff": False}
    assert carol.pk in config["moderatorIds"]
    assert config["streamUrl"] == f"/api/v1/videos/{video.pk}/stream"
    assert config["urls"]["bans"] == f"/api/v1/videos/{video.pk}/bans/"
    assert config["urls"]["resolve"] == resolve_url(video.pk)
    # The CSRF cookie is set, so the page's API calls can send X-CSRFToken.
    assert "csrftoken" in response.cookies


def test_staff_gets_the_console_of_every_video(video, other_video, staff):
    for target in (video, other_video):
        response = client_as(staff).get(page_url(target.pk))
        assert response.status_code == 200
        assert config_of(response)["user"]["staff"] is True


def test_unknown_video_is_404(staff, carol):
    assert client_as(staff).get(page_url(999999)).status_code == 404
    assert client_as(carol).get(page_url(999999)).status_code == 404


def test_only_get(video, staff):
    assert client_as(staff).post(page_url(video.pk)).status_code == 405


def test_the_console_shows_the_switches_as_they_are(video, staff):
    video.slow_mode_seconds = 30
    video.comments_enabled = False
    video.save()
    response = client_as(staff).get(page_url(video.pk))
    config = config_of(response)
    assert (config["slowModeSeconds"], config["commentsEnabled"], config["state"]) == (30, False, "live")
    html = response.content.decode()
    assert 'data-value="live" aria-pressed="true"' in html
    assert 'data-value="ended" aria-pressed="false"' in html
    assert 'id="c-comments-enabled" role="switch">' in html  # not checked


# -- what the page carries: held queue and open reports -----------------------------------------


def test_held_comments_and_open_reports_are_in_the_page(video, alice, bob, staff):
    BlockedTerm.objects.create(term="spoiler", action="hold", video=video)
    services.rules._terms_cache.clear()
    held = services.post_comment(video, alice, "big spoiler ahead").comment
    assert held.status == Comment.Status.HELD
    shown = services.post_comment(video, alice, "you are all wrong").comment
    services.report_comment(shown, bob, "rude")
    done = services.post_comment(video, alice, "old news").comment
    services.resolve_report(services.report_comment(done, bob, "spam"), staff)

    config = config_of(client_as(staff).get(page_url(video.pk)))
    assert [c["id"] for c in config["held"]] == [held.pk]
    assert config["held"][0]["status"] == "held"
    assert config["held"][0]["cursor"] == held.cursor
    assert [(r["comment"], r["reason"], r["reporter"]["name"]) for r in config["reports"]] == [
        (shown.pk, "rude", "bob")
    ]
    assert config["reportedComments"][str(shown.pk)]["text"] == "you are all wrong"


def test_other_videos_held_and_reports_stay_out(video, other_video, alice, bob, staff):
    BlockedTerm.objects.create(term="spoiler", action="hold")  # site-wide
    services.rules._terms_cache.clear()
    services.post_comment(other_video, alice, "spoiler elsewhere")
    services.report_comment(services.post_comment(other_video, alice, "meh").comment, bob, "x")
    config = config_of(client_as(staff).get(page_url(video.pk)))
    assert config["held"] == [] and config["reports"] == []


def test_user_text_in_the_page_is_never_markup(staff):
    evil_title = "<script>alert('title')</script>"
    video = Video.objects.create(title=evil_title, state=Video.State.LIVE)
    evil_user = make_user("<img src=x onerror=alert(1)>")
    reporter = make_user("</script><script>alert(2)</script>")
    BlockedTerm.objects.create(term="spoiler", action="hold", video=video)
    services.rules._terms_cache.clear()
    held = services.post_comment(video, evil_user, "spoiler </script><svg onload=alert(3)>").comment
    shown = services.post_comment(video, evil_user, "<b>bold</b> & co").comment
    services.report_comment(shown, reporter, "</script><img src=y onerror=alert(4)>")

    response = client_as(staff).get(page_url(video.pk))
    assert response.status_code == 200
    html = response.content.decode()
    for raw in (
        evil_title,
        "<img src=x",
        "<script>alert(2)",
        "<svg onload",
        "<img src=y",
        "<b>bold</b>",
    ):
        assert raw not in html, raw
    assert "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt;" in html  # the title, escaped
    # Only one </script> per script element: the config cannot close its own tag.
    config_start = html.index('id="mod-config"')
    assert html.index("</script>", config_start) > html.index("\\u003C/script\\u003E", config_start)
    # ...and the JSON still decodes to exactly what was typed.
    config = config_of(response)
    assert config["title"] == evil_title
    assert config["held"][0]["text"] == held.text
    assert config["held"][0]["author"]["name"] == "<img src=x onerror=alert(1)>"
    assert config["reports"][0]["reporter"]["name"] == "</script><script>alert(2)</script>"
    assert config["reports"][0]["reason"] == "</script><img src=y onerror=alert(4)>"


def test_page_queries_do_not_grow_with_held_comments_and_reports(video, alice, staff):
    BlockedTerm.objects.create(term="spoiler", action="hold", video=video)
    services.rules._terms_cache.clear()
    client = client_as(staff)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(page_url(video.pk)).status_code == 200
        return len(queries)

    services.post_comment(video, alice, "spoiler 0")
    services.report_comment(services.post_comment(video, alice, "x 0").comment, make_user("r0"), "r")
    few = count()
    for i in range(1, 15):
        services.post_comment(video, alice, f"spoiler {i}")
        services.report_comment(services.post_comment(video, alice, f"x {i}").comment, make_user(f"r{i}"), "r")
    assert count() == few


# -- POST reports/resolve/ ----------------------------------------------------------------


@pytest.fixture
def reported(video, alice, bob):
    comment = services.post_comment(video, alice, "reported twice").comment
    carla = make_user("carla")
    services.report_comment(comment, bob, "rude")
    services.report_comment(comment, carla, "spam")
    return comment


def post_json(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_a_moderator_dismisses_every_open_report_of_a_comment(video, carol, reported):
    response = post_json(client_as(carol), resolve_url(video.pk), {"comment": reported.pk, "reason": "fine"})
    assert response.status_code == 200
    reports = Report.objects.filter(comment=reported)
    assert sorted(response.json()["resolved"]) == sorted(reports.values_list("pk", flat=True))
    assert all(r.resolved and r.resolved_by == carol for r in reports)
    log = ModerationAction.objects.filter(action="resolve_report", comment=reported)
    assert log.count() == 2 and {row.actor for row in log} == {carol}
    assert {row.reason for row in log} == {"fine"}
    # Again: nothing left to resolve.
    assert post_json(client_as(carol), resolve_url(video.pk), {"comment": reported.pk}).json() == {"resolved": []}


@pytest.mark.parametrize(
    "who, status, code",
    [
        (None, 401, "not_authenticated"),
        ("alice", 403, "permission_denied"),
        ("dave", 403, "permission_denied"),
    ],
)
def test_only_moderators_of_the_video_dismiss_reports(who, status, code, video, reported, alice, dave):
    user = {"alice": alice, "dave": dave}.get(who)
    response = post_json(client_as(user), resolve_url(video.pk), {"comment": reported.pk})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not Report.objects.filter(resolved=True).exists()


def test_a_comment_of_another_video_is_not_touched(video, other_video, dave, reported):
    response = post_json(client_as(dave), resolve_url(other_video.pk), {"comment": reported.pk})
    assert response.status_code == 200 and response.json() == {"resolved": []}
    assert not Report.objects.filter(resolved=True).exists()


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"comment": "7"}', b'{"comment": true}', b'{"comment": 1, "reason": 5}']
)
def test_bad_bodies_get_400(body, video, staff, reported):
    response = client_as(staff).post(resolve_url(video.pk), data=body, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"code", "message"}


def test_resolve_unknown_video_is_404_json(staff):
    response = post_json(client_as(staff), resolve_url(999999), {"comment": 1})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_resolve_needs_the_csrf_token(video, staff, reported):
    client = client_as(staff, enforce_csrf_checks=True)
    assert post_json(client, resolve_url(video.pk), {"comment": reported.pk}).status_code == 403
    token = client.get(page_url(video.pk)).cookies["csrftoken"].value
    response = client.post(
        resolve_url(video.pk),
        data=json.dumps({"comment": reported.pk}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200 and len(response.json()["resolved"]) == 2


def test_resolve_refuses_ids_and_reasons_no_database_takes(db, video, staff):
    from django.test import Client

    client = Client()
    client.force_login(staff)
    url = f"/moderation/videos/{video.pk}/reports/resolve/"
    for body, code in (
        ('{"comment": 1180591620717411303424}', "invalid_comment"),
        ('{"comment": 1, "reason": "\\ud800"}', "invalid_reason"),
        ('{"comment": 1, "reason": "a\\u0000b"}', "invalid_reason"),
    ):
        r = client.post(url, body, content_type="application/json")
        assert r.status_code == 400, (body, r.content)
        assert r.json()["error"]["code"] == code
