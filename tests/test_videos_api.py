"""GET /api/v1/videos/ and /api/v1/videos/<id>/ (and the HTML pages' lists)."""

import pytest

from tests.base import *
from videos.models import Video

FIELDS = {
    "id",
    "title",
    "description",
    "stream_url",
    "poster_url",
    "state",
    "slow_mode_seconds",
    "comments_enabled",
    "created",
    "started_at",
    "ended_at",
    "owner",
}


@pytest.fixture
def videos(db):
    """Created oldest first: a, b, c, ..."""
    made = {}
    for name, state in [
        ("old live", Video.State.LIVE),
        ("ended 1", Video.State.ENDED),
        ("soon", Video.State.SCHEDULED),
        ("new live", Video.State.LIVE),
        ("ended 2", Video.State.ENDED),
        ("later", Video.State.SCHEDULED),
    ]:
        made[name] = Video.objects.create(title=name, state=state)
    return made


def titles(response):
    assert response.status_code == 200, response.content
    return [v["title"] for v in response.json()["results"]]


def test_it_lists_live_first_then_scheduled_then_ended_newest_first(anon_client, videos):
    r = anon_client.get("/api/v1/videos/")
    assert titles(r) == ["new live", "old live", "later", "soon", "ended 2", "ended 1"]
    assert set(r.json()["results"][0]) == FIELDS


@pytest.mark.parametrize(
    "state, expected",
    [
        ("live", ["new live", "old live"]),
        ("scheduled", ["later", "soon"]),
        ("ended", ["ended 2", "ended 1"]),
    ],
)
def test_it_filters_by_state(anon_client, videos, state, expected):
    assert titles(anon_client.get("/api/v1/videos/", {"state": state})) == expected


@pytest.mark.parametrize("state", ["LIVE", "on air", "live,ended", "live\x00", "", " live"])
def test_it_rejects_an_unknown_state(anon_client, videos, state):
    r = anon_client.get("/api/v1/videos/", {"state": state})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_state"
    assert "live" in error["message"]


def test_it_lists_every_state_without_the_parameter(anon_client, videos):
    assert len(titles(anon_client.get("/api/v1/videos/"))) == 6


def test_it_lists_nothing_when_there_are_no_videos(anon_client, db):
    assert anon_client.get("/api/v1/videos/").json() == {"results": []}


def test_it_keeps_live_videos_when_many_others_are_newer(anon_client, db):
    live = Video.objects.create(title="the one live", state=Video.State.LIVE)
    Video.objects.bulk_create(Video(title=f"ended {i}", state=Video.State.ENDED) for i in range(501))
    r = anon_client.get("/api/v1/videos/")
    assert titles(r)[0] == live.title
    assert len(r.json()["results"]) == 500


def test_it_shows_one_video(anon_client, videos):
    video = videos["soon"]
    video.description = "<b>escaped by clients</b>"
    video.slow_mode_seconds = 10
    video.save()
    r = anon_client.get(f"/api/v1/videos/{video.pk}/")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == FIELDS
    assert body["id"] == video.pk
    assert body["title"] == "soon"
    assert body["description"] == "<b>escaped by clients</b>"
    assert body["state"] == "scheduled"
    assert body["slow_mode_seconds"] == 10
    assert body["comments_enabled"] is True
    assert body["started_at"] is None and body["ended_at"] is None


@pytest.mark.parametrize("path", ["/api/v1/videos/999/", "/api/v1/videos/99999999999999999999/", "/api/v1/videos/x/"])
def test_it_answers_404_for_an_unknown_video(anon_client, db, path):
    r = anon_client.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_it_is_read_only(alice_client, videos):
    r = alice_client.post("/api/v1/videos/", {"title": "mine"}, format="json")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    r = alice_client.delete(f"/api/v1/videos/{videos['soon'].pk}/")
    assert r.status_code == 405


def test_it_answers_the_same_to_signed_in_users(alice_client, videos):
    assert titles(alice_client.get("/api/v1/videos/", {"state": "live"})) == ["new live", "old live"]


def test_the_home_page_lists_live_then_scheduled_videos(client, videos):
    r = client.get("/")
    assert r.status_code == 200
    page = r.content.decode()
    order = [page.index(t) for t in ("new live", "old live", "later", "soon")]
    assert order == sorted(order)
    assert "ended 1" not in page


def test_the_video_page_answers_404_for_an_unknown_video(client, db):
    assert client.get("/videos/999/").status_code == 404


def test_it_names_the_owner_of_a_video(anon_client, videos, alice):
    videos["soon"].owner = alice
    videos["soon"].save(update_fields=["owner"])
    assert anon_client.get(f"/api/v1/videos/{videos['soon'].pk}/").json()["owner"] == alice.pk
    assert anon_client.get(f"/api/v1/videos/{videos['later'].pk}/").json()["owner"] is None
    listed = {v["title"]: v["owner"] for v in anon_client.get("/api/v1/videos/").json()["results"]}
    assert listed["soon"] == alice.pk and listed["later"] is None
