"""Chat replay in the page, in headless Chromium against a real gateway: an
ended video plays its recording (static/demo/replay.webm, 20 s of VP9 that the
project ships) and the chat panel follows the player -- play, pause, seek back,
seek forward -- holding exactly the comments with offset_ms <= the playhead,
in replay order. Run alone: .venv/bin/pytest tests/test_browser_replay.py
"""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.utils import timezone

from comments import services
from comments.models import Comment
from tests.base import *
from tests.browser import *
from tests.browser import Viewer, off_loop
from videos.models import Video

pytestmark = [pytest.mark.browser, pytest.mark.processes]

RECORDING = "/static/demo/replay.webm"
# Offsets in ms; posted in this order, so stream order differs from offset order
# (the 1200 one is posted after the 2500 one) and two share 6000.
OFFSETS = [2500, 1200, -2000, 4000, 6000, 6000, 8000, 11000, 14000, 14500, 17000, 19500]
FAR_AHEAD = 90_000  # past the recording's end plus the window ahead: never fetched


@pytest.fixture
def gateway(shared_gateway, transactional_db):
    assert shared_gateway.alive(), shared_gateway.log()
    return shared_gateway


@pytest.fixture
def viewers(browser):
    opened: list[Viewer] = []

    def make(**options) -> Viewer:
        viewer = Viewer.new(browser, **options)
        opened.append(viewer)
        return viewer

    yield make
    for viewer in opened:
        viewer.close()


@pytest.fixture
def recorded(transactional_db, alice, bob, staff):
    """A video that was live, with comments at known offsets, now ended."""
    video = Video.objects.create(
        title="Launch day (recording)",
        description="The stream is over; the chat replays with the recording.",
        state=Video.State.LIVE,
        started_at=timezone.now() - timedelta(minutes=5),
        stream_url=RECORDING,
        owner=alice,
    )
    authors = [alice, bob, staff]
    comments = []
    texts: set[str] = set()
    for i, offset in enumerate([*OFFSETS, FAR_AHEAD]):
        text = f"at {offset / 1000:g} s"
        text = f"{text} too" if text in texts else text
        texts.add(text)
        comment = off_loop(services.post_comment, video, authors[i % 3], text).comment
        # The write path stamped the real offset (about five minutes); place it
        # where the test wants it on the recording.
        Comment.objects.filter(pk=comment.pk).update(offset_ms=offset)
        comments.append((offset, comment.pk))
    removed = off_loop(services.post_comment, video, bob, "removed after the end").comment
    Comment.objects.filter(pk=removed.pk).update(offset_ms=3000, status=Comment.Status.REMOVED)
    Video.objects.filter(pk=video.pk).update(state=Video.State.ENDED, ended_at=timezone.now())
    video.refresh_from_db()
    video.expected = sorted((o, pk) for o, pk in comments if o != FAR_AHEAD)  # replay order: offset, then stream
    video.far_ahead = comments[-1][1]
    return video


SNAPSHOT = """() => {
  const player = document.getElementById("player");
  const list = document.getElementById("chat-list");
  return {
    t: Math.floor(player.currentTime * 1000),
    paused: player.paused,
    synced: list.dataset.syncedMs || "",
    ids: [...list.querySelectorAll("li.comment")].map(li => Number(li.dataset.id)),
  };
}"""

# True when the list holds exactly the expected comments up to the playhead, and says it is complete there.
SYNCED = """expected => {
  const player = document.getElementById("player");
  const list = document.getElementById("chat-list");
  const t = Math.floor(player.currentTime * 1000);
  const want = expected.filter(([o]) => o <= t).map(([, id]) => id);
  const ids = [...list.querySelectorAll("li.comment")].map(li => Number(li.dataset.id));
  return list.dataset.syncedMs === String(t) && JSON.stringify(ids) === JSON.stringify(want);
}"""


def up_to(video, t_ms: int) -> list[int]:
    return [pk for o, pk in video.expected if o <= t_ms]


def control(viewer, script: str) -> None:
    viewer.page.evaluate(f"() => {{ const p = document.getElementById('player'); {script} }}")


def seek(viewer, seconds: float) -> None:
    control(viewer, f"p.currentTime = {seconds};")
    viewer.page.wait_for_function("() => !document.getElementById('player').seeking", timeout=2_000)


def wait_synced(viewer, video, timeout: float = 1_000) -> dict:
    viewer.page.wait_for_function(SYNCED, arg=[list(e) for e in video.expected], timeout=timeout)
    snap = viewer.page.evaluate(SNAPSHOT)
    assert snap["ids"] == up_to(video, snap["t"]), snap
    return snap


def test_it_replays_the_chat_with_the_recording(gateway, recorded, viewers):
    viewer = viewers()
    page = viewer.page
    replay_requests: list[dict] = []
    page.on(
        "request",
        lambda r: (
            "/replay/" in r.url
            and replay_requests.append({k: v[0] for k, v in parse_qs(urlparse(r.url).query).items()})
        ),
    )
    page.goto(gateway.url(f"/videos/{recorded.pk}/"), wait_until="domcontentloaded")
    page.wait_for_selector("#chat[data-mode=replay]")
    assert page.inner_text("#chat .chat-head h2") == "Chat replay"
    assert page.inner_text("#state-banner") == "Stream ended"
    assert page.get_attribute("#player", "loop") is None  # a recording plays once; the chat follows it
    # The recording plays in this Chromium (VP9 WebM): it has a duration and decodes frames.
    page.wait_for_function("() => document.getElementById('player').readyState >= 2", timeout=5_000)
    assert abs(page.evaluate("() => document.getElementById('player').duration") - 20.0) < 0.5

    # Start from the beginning, paused: only the comment from before the start.
    control(viewer, "p.pause();")
    seek(viewer, 0)
    snap = wait_synced(viewer, recorded)
    assert snap["ids"] == up_to(recorded, 0) and len(snap["ids"]) == 1

    # Play: comments appear as the playhead reaches them, in order, and none early.
    control(viewer, "p.play();")
    seen_counts = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        snap = page.evaluate(SNAPSHOT)
        assert not snap["paused"], snap
        # Never a comment past the playhead, and never far behind it (a tick is 100 ms; a busy machine may lag).
        assert snap["ids"] in (
            up_to(recorded, snap["t"]),
            *(up_to(recorded, snap["t"] - d) for d in range(50, 550, 50)),
        ), snap
        seen_counts.add(len(snap["ids"]))
        if snap["t"] >= 6_500:
            break
        time.sleep(0.05)
    assert snap["t"] >= 6_500, snap
    assert {1, 2, 3, 4, 6} <= seen_counts, seen_counts  # they came one by one, not all at once

    # Pause: the chat pauses with the player.
    control(viewer, "p.pause();")
    paused = wait_synced(viewer, recorded)
    time.sleep(1.0)
    assert page.evaluate(SNAPSHOT) == paused

    # Seek back: the comments past the new playhead go, within a second.
    seek(viewer, 1.5)
    snap = wait_synced(viewer, recorded)
    assert snap["ids"] == up_to(recorded, 1500) and len(snap["ids"]) == 2

    # Seek forward: everything up to it, in offset order (not the order they were posted), within a second.
    seek(viewer, 15.0)
    snap = wait_synced(viewer, recorded)
    assert snap["ids"] == up_to(recorded, 15_000) and len(snap["ids"]) == 10
    texts = viewer.comment_texts()
    assert texts[:3] == ["at -2 s", "at 1.2 s", "at 2.5 s"], texts
    assert "removed after the end" not in texts
    # Each shows its time in the recording.
    times = page.eval_on_selector_all("#chat-list li.comment time", "els => els.map(e => e.textContent)")
    assert times[:4] == ["-0:02", "0:01", "0:02", "0:04"], times
    viewer.screenshot("replay-desktop")

    # Play to the end: the last comments, and the list stays when the recording stops.
    control(viewer, "p.play();")
    page.wait_for_function("() => document.getElementById('player').ended", timeout=10_000)
    snap = wait_synced(viewer, recorded)
    assert snap["ids"] == [pk for _, pk in recorded.expected]

    # Only a window around the playhead was fetched: never the far comment, never past it; and not
    # a request per tick (30 s ahead covers this recording in one or two).
    assert 1 <= len(replay_requests) <= 3, replay_requests
    for query in replay_requests:
        assert int(query["to_ms"]) <= 20_000 + 30_000 + 1000, query
        assert int(query["to_ms"]) - int(query["from_ms"]) <= 60_000 + 30_000 + 1000, query
    assert viewer.comment(recorded.far_ahead).count() == 0
    assert viewer.errors == []


def test_it_says_where_the_replay_is_on_the_chat_page_of_an_ended_video(gateway, recorded, viewers):
    """The pop-out and framed chat have no player: the usual list, and a link to the recording."""
    viewer = viewers()
    viewer.page.goto(gateway.url(f"/videos/{recorded.pk}/chat/"), wait_until="domcontentloaded")
    viewer.wait_live()
    assert viewer.page.inner_text("#chat .chat-head h2") == "Live chat"
    assert viewer.page.get_attribute("#chat", "data-mode") is None
    banner = viewer.page.inner_text("#state-banner")
    assert banner.startswith("Stream ended") and "replay the chat" in banner, banner
    assert viewer.page.get_attribute("#state-banner a", "href") == f"/videos/{recorded.pk}/"
    assert viewer.errors == []


def test_it_changes_nothing_for_a_live_video(gateway, recorded, viewers):
    Video.objects.filter(pk=recorded.pk).update(state=Video.State.LIVE, ended_at=None)
    viewer = viewers().open(gateway, recorded)
    assert viewer.page.inner_text("#chat .chat-head h2") == "Live chat"
    assert viewer.page.get_attribute("#chat", "data-mode") is None
    assert viewer.page.get_attribute("#player", "loop") is not None
    # The live list: from the stream, in stream order, the far comment included.
    viewer.comment(recorded.far_ahead).wait_for()
    assert viewer.errors == []


WINDOWED = """([expected, behind]) => {
  const player = document.getElementById("player");
  const list = document.getElementById("chat-list");
  const t = Math.floor(player.currentTime * 1000);
  const want = expected.filter(([o]) => o <= t && o >= t - behind).map(([, id]) => id);
  const ids = [...list.querySelectorAll("li.comment")].map(li => Number(li.dataset.id));
  return list.dataset.syncedMs === String(t) && JSON.stringify(ids) === JSON.stringify(want);
}"""


def test_it_fetches_a_new_window_when_a_seek_leaves_the_loaded_one(gateway, recorded, viewers):
    """A window narrower than the recording (3 s behind, 4 s ahead, as a page may set it): a seek out of
    what is loaded fetches the window around the new playhead, and the list is right within a second."""
    behind, ahead = 3_000, 4_000
    viewer = viewers()
    page = viewer.page
    page.add_init_script(f"window.livecommentReplay = {{behindMs: {behind}, aheadMs: {ahead}}};")
    ranges: list[tuple[int, int]] = []
    page.on(
        "request",
        lambda r: (
            "/replay/" in r.url
            and ranges.append(
                (int(parse_qs(urlparse(r.url).query)["from_ms"][0]), int(parse_qs(urlparse(r.url).query)["to_ms"][0]))
            )
        ),
    )
    page.goto(gateway.url(f"/videos/{recorded.pk}/"), wait_until="domcontentloaded")
    page.wait_for_selector("#chat[data-mode=replay]")
    page.wait_for_function("() => document.getElementById('player').readyState >= 2", timeout=5_000)
    control(viewer, "p.pause();")
    expected = [list(e) for e in recorded.expected]

    def at(seconds: float, lo: int, hi: int) -> None:
        seek(viewer, seconds)
        page.wait_for_function(WINDOWED, arg=[expected, behind], timeout=1_000)
        assert viewer.comment_ids() == [pk for o, pk in recorded.expected if lo <= o <= hi]

    at(0, -3_000, 0)
    fetched = len(ranges)
    at(15.0, 12_000, 15_000)  # forward, out of the loaded window: a fetch of [12 s, 19 s)
    assert len(ranges) > fetched and ranges[-1] == (12_000, 19_000), ranges
    fetched = len(ranges)
    at(5.0, 2_000, 5_000)  # back, before it: another
    assert len(ranges) > fetched and ranges[-1] == (2_000, 9_000), ranges

    # Playing on, pages follow the playhead (a fetch when less than half the 4 s ahead is loaded)
    # and what falls 3 s behind it leaves the list.
    fetched = len(ranges)
    control(viewer, "p.play();")
    page.wait_for_function("() => document.getElementById('player').currentTime >= 11.2", timeout=10_000)
    control(viewer, "p.pause();")
    page.wait_for_function(WINDOWED, arg=[expected, behind], timeout=1_000)
    t = page.evaluate("() => Math.floor(document.getElementById('player').currentTime * 1000)")
    assert 1 <= len(ranges) - fetched <= 5, ranges[fetched:]
    assert viewer.comment_ids() == [pk for o, pk in recorded.expected if t - behind <= o <= t]
    assert 11_000 in [o for o, pk in recorded.expected if pk in viewer.comment_ids()]
    # Never more than the window at a time, never the far comment.
    assert all(to - fr <= behind + ahead for fr, to in ranges), ranges
    assert viewer.comment(recorded.far_ahead).count() == 0
    assert viewer.errors == []
