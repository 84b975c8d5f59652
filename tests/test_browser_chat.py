"""The viewer page end to end, in headless Chromium against real gateway processes.

Two browser contexts (two people) on the same video: one posts through the
page, the other sees it; deletions, the WebSocket transport, a server restart
and an XSS payload. Run alone: .venv/bin/pytest tests/test_browser_chat.py
"""

from __future__ import annotations

import time

import pytest

from comments import services
from comments.models import Comment
from tests.base import *
from tests.browser import *
from tests.browser import Viewer, off_loop, start_gateway
from videos.models import Video

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture
def live_video(transactional_db):
    return Video.objects.create(
        title="Launch day live",
        description="Watch along and chat.",
        state=Video.State.LIVE,
        stream_url="/static/demo/demo.mp4",
        poster_url="/static/demo/poster.svg",
    )


def post(video, author, text):
    """A comment through the write path (as another gateway would), published live."""
    return off_loop(services.post_comment, video, author, text).comment


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


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_a_comment_reaches_the_other_viewer_within_a_second(transport, gateway, live_video, alice, bob, viewers):
    query = "?transport=ws" if transport == "ws" else ""
    poster = viewers().sign_in(gateway, alice).open(gateway, live_video, query)
    watcher = viewers().open(gateway, live_video, query)
    assert poster.transport() == watcher.transport() == transport

    started = time.monotonic()
    poster.post("hello from alice 👋")
    watcher.wait_for_text("hello from alice 👋", timeout=1_000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"took {elapsed:.3f} s"

    # The author's own comment is highlighted on the author's page only.
    comment = Comment.objects.get(text="hello from alice 👋")
    poster.comment(comment.pk).wait_for()
    assert "own" in poster.comment(comment.pk).get_attribute("class")
    assert "own" not in watcher.comment(comment.pk).get_attribute("class")
    assert watcher.comment(comment.pk).locator(".author").inner_text() == "alice"
    assert poster.page.input_value("#compose-text") == ""
    # Shown once on the poster's page, though it arrived twice (POST answer and stream).
    assert poster.comment_ids().count(comment.pk) == 1
    assert poster.errors == watcher.errors == []


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_a_comment_deleted_by_its_author_disappears_from_the_other_page(transport, gateway, live_video, alice, viewers):
    query = "?transport=ws" if transport == "ws" else ""
    keep = post(live_video, alice, "this one stays")
    gone = post(live_video, alice, "oops, wrong chat")
    author = viewers().session_for(gateway, alice).open(gateway, live_video, query)
    watcher = viewers().open(gateway, live_video, query)
    watcher.comment(gone.pk).wait_for()
    author.comment(gone.pk).wait_for()

    author.comment(gone.pk).hover()
    author.comment(gone.pk).locator("button[data-action=delete]").click()

    watcher.comment(gone.pk).wait_for(state="detached", timeout=2_000)
    author.comment(gone.pk).wait_for(state="detached", timeout=2_000)
    assert watcher.comment_ids() == [keep.pk]
    Comment.objects.get(pk=gone.pk, status=Comment.Status.REMOVED)

    # A viewer who opens the page afterwards never sees it.
    late = viewers().open(gateway, live_video, query)
    late.comment(keep.pk).wait_for()
    assert late.comment_ids() == [keep.pk]


def test_a_server_restart_shows_reconnecting_then_resumes_with_nothing_missed(
    gateways, live_video, alice, bob, viewers
):
    """Two viewers, one on SSE and one on the WebSocket (?transport=ws), on a
    server that is killed and started again on the same port."""
    gateway = start_gateway(gateways)
    before = [post(live_video, alice, f"before {i}").pk for i in range(3)]
    on_sse = viewers().open(gateway, live_video)
    on_ws = viewers().open(gateway, live_video, "?transport=ws")
    assert (on_sse.transport(), on_ws.transport()) == ("sse", "ws")
    for watcher in (on_sse, on_ws):
        watcher.wait_for_count(3)

    gateway.kill()
    for watcher in (on_sse, on_ws):
        watcher.page.wait_for_selector("#conn-status[data-state=reconnecting]", timeout=5_000)
        assert watcher.status() == "reconnecting…"

    # While the server is down the conversation goes on (another gateway,
    # or here the write path directly): none of it may be lost.
    during = [post(live_video, bob, f"while down {i}").pk for i in range(4)]
    removed = post(live_video, bob, "removed while down")
    off_loop(services.remove_comment, removed, by=bob)
    off_loop(services.remove_comment, Comment.objects.get(pk=before[0]), by=alice)

    gateways.restart(gateway)
    expected = before[1:] + during
    for watcher in (on_sse, on_ws):
        watcher.wait_live(timeout=15_000)
        watcher.page.wait_for_function(
            "ids => JSON.stringify([...document.querySelectorAll('#chat-list li.comment')]"
            ".map(e => Number(e.dataset.id))) === JSON.stringify(ids)",
            arg=expected,
            timeout=10_000,
        )
    assert (on_sse.transport(), on_ws.transport()) == ("sse", "ws")

    # And live again, not just caught up.
    after = post(live_video, alice, "after the restart")
    for watcher in (on_sse, on_ws):
        watcher.comment(after.pk).wait_for(timeout=3_000)
        assert watcher.comment_ids() == expected + [after.pk]
        assert watcher.errors == []


XSS_PAYLOADS = [
    "<script>window.__xss = 'script'</script>",
    "<img src=x onerror=\"window.__xss = 'img'\">",
    "</li><b>bold?</b><svg onload=\"window.__xss='svg'\">",
]


def test_an_xss_payload_is_shown_literally_and_never_runs(gateway, live_video, alice, viewers):
    poster = viewers().session_for(gateway, alice).open(gateway, live_video)
    watcher = viewers().open(gateway, live_video)
    for payload in XSS_PAYLOADS:
        poster.post(payload)
        watcher.wait_for_text(payload)
        poster.wait_for_text(payload)
    for viewer in (poster, watcher):
        assert viewer.comment_texts() == XSS_PAYLOADS
        assert viewer.page.evaluate("window.__xss") is None
        assert viewer.page.locator("#chat-list img, #chat-list script, #chat-list svg, #chat-list b").count() == 0
        assert viewer.errors == []


def test_enter_while_a_comment_is_still_sending_sends_the_next_one_after_it(gateway, live_video, alice, viewers):
    """A fast typist (or a slow network): the stream can show a comment before
    its POST answers. Enter pressed meanwhile must not be lost, and the answer
    to the first POST must not wipe the text typed after it."""
    poster = viewers().session_for(gateway, alice).open(gateway, live_video)
    watcher = viewers().open(gateway, live_video)
    held = []

    def hold_posts(route):
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    poster.page.route("**/api/v1/videos/*/comments/", hold_posts)

    def wait_held(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(held) < count and time.monotonic() < deadline:
            poster.page.wait_for_timeout(20)
        assert len(held) == count

    poster.post("first")
    wait_held(1)
    poster.post("second, typed while the first was on its way")
    poster.page.wait_for_timeout(200)
    assert len(held) == 1  # one request at a time, in order
    held[0].continue_()
    watcher.wait_for_text("first")
    wait_held(2)
    assert poster.page.input_value("#compose-text") == "second, typed while the first was on its way"
    held[1].continue_()
    watcher.wait_for_text("second, typed while the first was on its way")
    poster.page.wait_for_function("() => document.getElementById('compose-text').value === ''")
    for viewer in (poster, watcher):
        viewer.wait_for_count(2)
        assert viewer.comment_texts() == ["first", "second, typed while the first was on its way"]
    assert poster.errors == watcher.errors == []
