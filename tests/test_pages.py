"""Server side of the HTML pages (no browser): the index, the video page's
configuration for static/js/chat.js, and the account pages. The browser
tests (tests/test_browser_*.py) cover what the pages do."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model

from tests.base import *
from videos.models import Video


def page_config(html: str) -> dict:
    match = re.search(r'<script id="lc-config" type="application/json">(.*?)</script>', html, re.DOTALL)
    assert match, "no lc-config on the page"
    return json.loads(match.group(1))


@pytest.fixture
def counts(monkeypatch):
    """Viewer counts as the gateways would have written them to Redis."""
    numbers: dict[int, int] = {}
    monkeypatch.setattr("videos.views.viewer_count", lambda video_id: numbers.get(video_id, 0))
    return numbers


def test_index_lists_live_then_upcoming_with_viewer_counts(client, db, counts):
    scheduled = Video.objects.create(title="Tomorrow", state=Video.State.SCHEDULED)
    live = Video.objects.create(title="On air", state=Video.State.LIVE, poster_url="/static/demo/poster.svg")
    Video.objects.create(title="Over", state=Video.State.ENDED)
    counts[live.pk] = 1234
    html = client.get("/").content.decode()
    assert html.index("On air") < html.index("Tomorrow")
    assert "Over" not in html
    assert f'data-video-id="{live.pk}"' in html and f'data-video-id="{scheduled.pk}"' in html
    assert '<span class="viewer-count">1234</span> watching' in html
    assert html.count("viewer-count") == 1  # upcoming videos have no viewers to count


def test_index_without_videos_says_how_to_make_one(client, db):
    assert "seed_demo" in client.get("/").content.decode()


def test_video_page_for_an_anonymous_viewer(client, video, counts, settings):
    settings.REALTIME_HEARTBEAT_SECONDS = 2.5
    counts[video.pk] = 3
    response = client.get(f"/videos/{video.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    config = page_config(html)
    assert config["videoId"] == video.pk
    assert config["streamUrl"] == f"/api/v1/videos/{video.pk}/stream"
    assert config["wsPath"] == f"/ws/videos/{video.pk}/"
    assert config["commentsUrl"] == f"/api/v1/videos/{video.pk}/comments/"
    assert config["user"] is None and config["canModerate"] is False
    assert config["heartbeatSeconds"] == 2.5
    assert 'data-heartbeat-seconds="2.5"' in html
    assert config["maxNodes"] == 500
    assert '<b id="viewer-count">3</b>' in html
    assert f'href="/accounts/login/?next=/videos/{video.pk}/"' in html
    assert 'id="compose"' not in html
    assert "/static/js/chat.js" in html


def test_video_page_for_a_signed_in_viewer_and_moderators(client, video, alice, staff, bob, counts):
    video.moderators.add(bob)
    client.force_login(alice)
    response = client.get(f"/videos/{video.pk}/")
    html = response.content.decode()
    config = page_config(html)
    assert config["user"] == {"id": alice.pk, "name": "alice"}
    assert sorted(config["moderatorIds"]) == sorted([staff.pk, bob.pk])
    assert 'id="compose"' in html and "csrfmiddlewaretoken" in html
    assert "csrftoken" in response.cookies
    assert 'id="moderate-link"' not in html

    client.force_login(bob)
    html = client.get(f"/videos/{video.pk}/").content.decode()
    assert page_config(html)["canModerate"] is True
    assert f'href="/moderation/videos/{video.pk}/"' in html


def test_video_page_escapes_what_users_wrote(client, db, counts):
    evil = "</script><script>alert(1)</script>"
    video = Video.objects.create(title=evil, description=evil, state=Video.State.LIVE)
    html = client.get(f"/videos/{video.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_video_page_states(client, db, counts):
    ended = Video.objects.create(title="Done", state=Video.State.ENDED)
    html = client.get(f"/videos/{ended.pk}/").content.decode()
    assert "Stream ended" in html
    assert 'id="state-banner" role="status" hidden' not in html
    assert client.get("/videos/999999/").status_code == 404


def test_sign_up_signs_in_and_returns_to_next(client, db, video):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "dora",
            "password1": "a-long-Passphrase-42",
            "password2": "a-long-Passphrase-42",
            "next": f"/videos/{video.pk}/",
        },
    )
    assert response.status_code == 302 and response["Location"] == f"/videos/{video.pk}/"
    assert get_user_model().objects.filter(username="dora").exists()
    assert page_config(client.get(f"/videos/{video.pk}/").content.decode())["user"]["name"] == "dora"


def test_sign_up_refuses_an_offsite_next_and_shows_errors(client, db):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "eve",
            "password1": "a-long-Passphrase-42",
            "password2": "a-long-Passphrase-42",
            "next": "https://evil.example/",
        },
    )
    assert response["Location"] == "/"
    html = client.post("/accounts/signup/", {"username": "", "password1": "x", "password2": "y"}).content.decode()
    assert 'class="errorlist"' in html


def test_sign_in_and_out_pages(client, alice, video):
    html = client.get(f"/accounts/login/?next=/videos/{video.pk}/").content.decode()
    assert 'id="login-form"' in html and f'value="/videos/{video.pk}/"' in html
    client.force_login(alice)
    response = client.post("/accounts/logout/", {"next": f"/videos/{video.pk}/"})
    assert response.status_code == 302 and response["Location"] == f"/videos/{video.pk}/"
    assert page_config(client.get(f"/videos/{video.pk}/").content.decode())["user"] is None
