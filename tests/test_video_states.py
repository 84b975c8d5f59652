"""A video's state moves one way: scheduled -> live -> ended (or scheduled -> ended).

Through the API and the admin (both call comments.services.update_video);
a change another region accepted is applied as it was made there.
"""

from __future__ import annotations

import pytest

from comments import services
from comments.models import ModerationAction
from regions import ingest
from tests.base import *
from tests.base import client_for
from tests.test_admin import admin_client, superuser
from videos.models import Video

ALLOWED = [("scheduled", "live"), ("scheduled", "ended"), ("live", "ended")]
REFUSED = [("live", "scheduled"), ("ended", "scheduled"), ("ended", "live")]


def patch_state(user, video: Video, state: str):
    return client_for(user).patch(f"/api/v1/videos/{video.pk}/", {"state": state}, format="json")


@pytest.mark.parametrize("current, new", ALLOWED)
def test_it_moves_a_video_forward_and_stamps_the_times(staff, redis, current, new):
    video = Video.objects.create(title="v", state=current)
    r = patch_state(staff, video, new)
    assert r.status_code == 200, r.content
    video.refresh_from_db()
    assert video.state == new
    assert (video.started_at is not None) == (new == "live")  # scheduled -> ended never went on air
    assert (video.ended_at is not None) == (new == "ended")


@pytest.mark.parametrize("current, new", REFUSED)
def test_it_refuses_to_move_a_video_back(staff, redis, current, new):
    video = Video.objects.create(title="v", state="scheduled")
    for step in {"live": ["live"], "ended": ["live", "ended"]}[current]:
        services.update_video(video, staff, state=step)
    video.refresh_from_db()
    before = (video.state, video.started_at, video.ended_at)
    actions = ModerationAction.objects.count()
    r = patch_state(staff, video, new)
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == "invalid_state_transition"
    assert current in error["message"] and new in error["message"]
    video.refresh_from_db()
    assert (video.state, video.started_at, video.ended_at) == before
    assert ModerationAction.objects.count() == actions


def test_it_leaves_other_settings_unchanged_when_the_state_is_refused(staff, redis):
    video = Video.objects.create(title="v", state="ended", slow_mode_seconds=0)
    r = client_for(staff).patch(
        f"/api/v1/videos/{video.pk}/", {"state": "live", "slow_mode_seconds": 30}, format="json"
    )
    assert r.status_code == 400
    video.refresh_from_db()
    assert (video.state, video.slow_mode_seconds) == ("ended", 0)


def test_the_admin_refuses_the_same_moves(db, redis):
    video = Video.objects.create(title="v", state="ended")
    r = admin_client(superuser()).post(
        f"/admin/videos/video/{video.pk}/change/",
        {
            "title": video.title,
            "description": "",
            "stream_url": "",
            "poster_url": "",
            "state": "scheduled",
            "slow_mode_seconds": 0,
            "comments_enabled": "on",
        },
        follow=True,
    )
    assert "cannot become scheduled" in r.content.decode()
    video.refresh_from_db()
    assert video.state == "ended"


def test_ingest_applies_what_the_origin_region_accepted(transactional_db, redis):
    video = Video.objects.create(title="v", state="scheduled")
    assert ingest.ingest_remote_event("far", "1-0", "video", video.pk, {"changes": {"state": "live"}}) == "applied"
    video.refresh_from_db()
    assert video.state == "live" and video.started_at is not None and video.ended_at is None
    assert ingest.ingest_remote_event("far", "2-0", "video", video.pk, {"changes": {"state": "ended"}}) == "applied"
    video.refresh_from_db()
    assert video.state == "ended" and video.ended_at is not None
