"""The viewer page's behaviour in headless Chromium: scrolling, the DOM bound,
posting errors, anonymous viewers, transport fallback, the state banner,
reporting, the index and account pages, and the screenshots for the README
(test-artifacts/*.png; UPDATE_SCREENSHOTS=1 also copies them to docs/screenshots/).
"""

from __future__ import annotations

import pytest

from comments import services
from comments.models import Comment, Report
from tests.base import *
from tests.browser import *
from tests.browser import DESKTOP, PHONE, Viewer, off_loop, start_gateway, wait_until
from videos.models import Video

pytestmark = [pytest.mark.browser, pytest.mark.processes]


@pytest.fixture
def live_video(transactional_db):
    return Video.objects.create(
        title="Launch day live",
        description="Watch along and chat. Be kind; moderators are around.",
        state=Video.State.LIVE,
        stream_url="/static/demo/demo.mp4",
        poster_url="/static/demo/poster.svg",
    )


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


def post_many(video, author, texts) -> list[Comment]:
    return off_loop(lambda: [services.post_comment(video, author, text).comment for text in texts])


def announce_state(video, state: str, by) -> None:
    """A moderator changes the video's state: a video.state event to every viewer."""
    off_loop(services.update_video, video, by, state=state)


def test_new_comments_button_when_scrolled_up_and_autoscroll_at_the_bottom(gateway, live_video, bob, viewers):
    post_many(live_video, bob, [f"backlog comment {i}" for i in range(40)])
    viewer = viewers(viewport={"width": 1280, "height": 600}).open(gateway, live_video)
    viewer.wait_for_count(40)
    page = viewer.page
    at_bottom = "() => { const s = document.getElementById('chat-scroll'); return s.scrollHeight - s.scrollTop - s.clientHeight < 4 }"
    page.wait_for_function(at_bottom)

    # At the bottom, new comments scroll into view.
    post_many(live_video, bob, ["live one"])
    viewer.wait_for_text("live one")
    page.wait_for_function(at_bottom)
    assert page.is_hidden("#new-comments")

    # Scrolled up: it stays put and counts what arrives below.
    page.evaluate("document.getElementById('chat-scroll').scrollTop = 0")
    page.wait_for_function("() => window.livecomment.stickToBottom === false")
    post_many(live_video, bob, ["below 1", "below 2", "below 3"])
    page.wait_for_selector("#new-comments:visible")
    page.wait_for_function("() => document.getElementById('new-comments').textContent.startsWith('3 new comments')")
    assert page.evaluate("document.getElementById('chat-scroll').scrollTop") == 0

    page.click("#new-comments")
    page.wait_for_function(at_bottom)
    assert page.is_hidden("#new-comments")
    post_many(live_video, bob, ["and auto-scroll is back"])
    viewer.wait_for_text("and auto-scroll is back")
    page.wait_for_function(at_bottom)


def test_the_panel_keeps_at_most_500_comments_in_the_dom(gateway, live_video, bob, viewers):
    viewer = viewers().open(gateway, live_video)
    comments = post_many(live_video, bob, [f"comment number {i} 🎉" for i in range(505)])
    viewer.page.wait_for_function(
        "id => document.querySelector('#chat-list li.comment:last-child')?.dataset.id === String(id)",
        arg=comments[-1].pk,
        timeout=15_000,
    )
    ids = viewer.comment_ids()
    assert ids == [c.pk for c in comments[-500:]]
    assert viewer.page.evaluate("window.livecomment.commentCount") == 500


def test_posting_errors_show_inline_with_a_slow_mode_countdown(gateway, live_video, alice, viewers):
    Video.objects.filter(pk=live_video.pk).update(slow_mode_seconds=30)
    viewer = viewers().session_for(gateway, alice).open(gateway, live_video)
    page = viewer.page
    assert "Slow mode" in page.inner_text(".compose-who")

    # Shift+Enter is a new line, Enter sends.
    page.fill("#compose-text", "two")
    page.press("#compose-text", "Shift+Enter")
    page.type("#compose-text", "lines")
    assert page.input_value("#compose-text") == "two\nlines"
    page.press("#compose-text", "Enter")
    viewer.wait_for_text("two\nlines")

    # The client counts down after its own post; the server's 429 says the same.
    page.wait_for_function("() => document.getElementById('compose-error').textContent.includes('Slow mode')")
    page.evaluate("() => { }")
    assert page.is_disabled("#compose-send")
    assert page.inner_text("#compose-send").endswith("s")

    # Even if the client forgets, the server's answer shows inline and the text stays.
    page.evaluate("document.getElementById('compose-send').disabled = false")
    page.fill("#compose-text", "too soon")
    # Reload drops the client's own timer; the 429 from the API brings it back.
    page.reload(wait_until="domcontentloaded")
    viewer.wait_live()
    viewer.post("too soon")
    page.wait_for_function("() => /again in \\d+ s/.test(document.getElementById('compose-error').textContent)")
    assert page.input_value("#compose-text") == "too soon"
    assert page.is_disabled("#compose-send")
    assert not Comment.objects.filter(text="too soon").exists()


def test_other_api_errors_show_inline(gateway, live_video, alice, staff, viewers):
    viewer = viewers().session_for(gateway, alice).open(gateway, live_video)
    off_loop(services.ban_user, live_video, alice, staff, duration_seconds=600)
    viewer.post("can I still talk?")
    viewer.page.wait_for_function(
        "() => document.getElementById('compose-error').textContent.includes('timed out from commenting')"
    )
    assert viewer.page.input_value("#compose-text") == "can I still talk?"
    off_loop(services.lift_ban, live_video, alice, staff)
    Video.objects.filter(pk=live_video.pk).update(state=Video.State.ENDED)
    viewer.post("anyone there?")
    viewer.page.wait_for_function(
        "() => document.getElementById('compose-error').textContent.includes('comments are closed')"
    )
    assert viewer.page.input_value("#compose-text") == "anyone there?"
    assert viewer.errors == []


def test_an_anonymous_viewer_reads_and_gets_a_sign_in_link(gateway, live_video, alice, viewers):
    post_many(live_video, alice, ["hi there"])
    viewer = viewers().open(gateway, live_video)
    viewer.wait_for_text("hi there")
    assert viewer.page.locator("#compose").count() == 0
    link = viewer.page.get_attribute("#signin-link", "href")
    assert link == f"/accounts/login/?next=/videos/{live_video.pk}/"
    viewer.page.click("#signin-link")
    viewer.page.wait_for_selector("#login-form")


def test_sign_up_then_sign_out_returns_to_the_video(gateway, live_video, viewers):
    viewer = viewers()
    page = viewer.page
    page.goto(gateway.url(f"/videos/{live_video.pk}/"), wait_until="domcontentloaded")
    page.click("a:has-text('create an account')")
    page.fill("#id_username", "carol")
    page.fill("#id_password1", "a-long-Passphrase-42")
    page.fill("#id_password2", "a-long-Passphrase-42")
    with page.expect_navigation():
        page.click("#signup-form button[type=submit]")
    assert page.url.endswith(f"/videos/{live_video.pk}/")
    assert page.inner_text("#who").startswith("carol")
    viewer.wait_live()
    viewer.post("first comment from carol")
    viewer.wait_for_text("first comment from carol")
    assert "own" in page.get_attribute("#chat-list li.comment", "class")

    with page.expect_navigation():
        page.click("#signout")
    assert page.url.endswith(f"/videos/{live_video.pk}/")
    page.wait_for_selector("#signin-link")


def test_sign_in_errors_are_shown(gateway, viewers):
    page = viewers().page
    page.goto(gateway.url("/accounts/login/"), wait_until="domcontentloaded")
    page.fill("#id_username", "nobody")
    page.fill("#id_password", "wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector(".errorlist")
    assert "correct username and password" in page.inner_text(".errorlist")


def test_sse_that_cannot_connect_falls_back_to_the_websocket(gateway, live_video, alice, viewers):
    viewer = viewers()
    viewer.context.route("**/stream*", lambda route: route.fulfill(status=502, body="bad gateway"))
    viewer.open(gateway, live_video)
    assert viewer.transport() == "ws"
    post_many(live_video, alice, ["over the websocket"])
    viewer.wait_for_text("over the websocket", timeout=2_000)


def test_silent_sse_falls_back_to_the_websocket_after_the_heartbeat_window(gateways, live_video, alice, viewers):
    gateway = start_gateway(gateways, REALTIME_HEARTBEAT_SECONDS="1")
    viewer = viewers()
    # A buffering proxy: the request goes out and nothing ever comes back.
    viewer.context.route("**/stream*", lambda route: None)
    viewer.page.goto(gateway.url(f"/videos/{live_video.pk}/"), wait_until="domcontentloaded")
    assert viewer.page.get_attribute("#chat", "data-heartbeat-seconds") == "1.0"
    assert viewer.transport() == "sse"
    viewer.page.wait_for_selector("#chat[data-transport=ws]", timeout=8_000)
    viewer.wait_live()
    post_many(live_video, alice, ["found you"])
    viewer.wait_for_text("found you", timeout=2_000)


def test_the_stream_ended_banner(gateway, live_video, alice, staff, viewers):
    viewer = viewers().session_for(gateway, alice).open(gateway, live_video)
    assert viewer.page.is_enabled("#compose-text")
    assert viewer.page.is_hidden("#state-banner")
    announce_state(live_video, "ended", by=staff)
    viewer.page.wait_for_selector("#state-banner:visible", timeout=3_000)
    assert viewer.page.inner_text("#state-banner") == "Stream ended"
    assert viewer.page.inner_text("#state-pill").lower() == "ended"
    assert viewer.page.is_disabled("#compose-text") and viewer.page.is_disabled("#compose-send")
    assert viewer.page.get_attribute("#compose-text", "placeholder") == "The stream has ended; chat is closed"
    # A viewer who arrives later sees it from the page itself, and the chat
    # replays with the recording (tests/test_browser_replay.py).
    late = viewers()
    late.page.goto(gateway.url(f"/videos/{live_video.pk}/"), wait_until="domcontentloaded")
    late.page.wait_for_selector("#chat[data-mode=replay]")
    assert late.page.inner_text("#state-banner") == "Stream ended"
    assert late.page.inner_text("#chat .chat-head h2") == "Chat replay"


def test_report_and_moderator_badge(gateway, live_video, alice, bob, staff, viewers):
    comment = post_many(live_video, alice, ["report me"])[0]
    post_many(live_video, staff, ["please keep it civil"])
    viewer = viewers().session_for(gateway, bob).open(gateway, live_video)
    viewer.wait_for_text("please keep it civil")
    mod = viewer.page.locator("#chat-list li.comment.by-mod")
    assert mod.count() == 1 and mod.locator(".role-badge [aria-hidden=true]").inner_text() == "Staff"

    row = viewer.comment(comment.pk)
    row.hover()
    row.locator("button[data-action=report]").click()
    row.locator(".report-reason[data-reason=spam]").click()
    note = row.locator(".note")
    note.wait_for()
    assert note.inner_text() == "Reported. Thanks \u2014 a moderator will take a look."
    report = Report.objects.get(comment=comment)
    assert (report.reporter, report.reason) == (bob, "spam")
    assert row.locator("button[data-action=report]").is_disabled()
    # Once per person: after a reload, a second report says so instead of failing.
    viewer.page.reload(wait_until="domcontentloaded")
    row.wait_for()
    row.hover()
    row.locator("button[data-action=report]").click()
    row.locator(".report-reason[data-reason=other]").click()
    row.locator(".note").wait_for()
    assert row.locator(".note").inner_text() == "You already reported this comment."
    assert Report.objects.filter(comment=comment).count() == 1
    assert viewer.errors == []


def test_a_moderator_removes_a_comment_from_the_chat_and_it_vanishes_everywhere(
    gateway, live_video, alice, staff, viewers
):
    comment = post_many(live_video, alice, ["something rude"])[0]
    watcher = viewers().open(gateway, live_video)
    moderator = viewers().session_for(gateway, staff).open(gateway, live_video)
    watcher.comment(comment.pk).wait_for()
    assert moderator.page.get_attribute("#moderate-link", "href") == f"/moderation/videos/{live_video.pk}/"
    assert watcher.page.locator("#moderate-link").count() == 0
    row = moderator.comment(comment.pk)
    row.wait_for()
    row.hover()
    row.locator("button[data-action=remove]").click()
    watcher.comment(comment.pk).wait_for(state="detached", timeout=2_000)
    moderator.comment(comment.pk).wait_for(state="detached", timeout=2_000)
    assert Comment.objects.get(pk=comment.pk).status == Comment.Status.REMOVED


def test_slow_mode_turned_on_live_reaches_the_post_box(gateway, live_video, alice, staff, viewers):
    viewer = viewers().session_for(gateway, alice).open(gateway, live_video)
    assert viewer.page.is_hidden("#slow-note")
    off_loop(services.update_video, live_video, staff, slow_mode_seconds=20, comments_enabled=True)
    viewer.page.wait_for_selector("#slow-note:visible", timeout=3_000)
    assert viewer.page.inner_text("#slow-note") == "Slow mode: one comment every 20 s"
    off_loop(services.update_video, Video.objects.get(pk=live_video.pk), staff, comments_enabled=False)
    viewer.page.wait_for_selector("#compose-text:disabled", timeout=3_000)
    assert viewer.page.is_disabled("#compose-send")


def test_index_lists_live_then_upcoming_with_viewer_counts(gateway, live_video, viewers):
    Video.objects.create(title="Keynote tomorrow", state=Video.State.SCHEDULED, poster_url="/static/demo/poster.svg")
    Video.objects.create(title="Yesterday's stream", state=Video.State.ENDED)
    watcher = viewers().open(gateway, live_video)  # one viewer, counted in Redis by the gateway
    page = viewers().page

    def counted():
        page.goto(gateway.url("/"), wait_until="domcontentloaded")
        return page.inner_text(f"[data-video-id='{live_video.pk}'] .viewer-count") == "1"

    assert wait_until(counted, timeout=8), page.content()
    titles = page.eval_on_selector_all(".video-card .title", "els => els.map(e => e.textContent)")
    assert titles == ["Launch day live", "Keynote tomorrow"]
    badges = page.eval_on_selector_all(".video-card .state-badge", "els => els.map(e => e.textContent)")
    assert badges == ["Live", "Upcoming"]
    watcher.page.wait_for_function("() => document.getElementById('viewer-count').textContent === '1'")


SCREENSHOT_CHAT = [
    ("bob", "hey everyone 👋 just joined"),
    ("carol", "the audio is so much better than last week 🔥🔥"),
    ("staff", "Welcome! Questions for the Q&A go here, please keep it friendly."),
    ("bob", "Whenwillthereplaybeavailable?askingforafriendwhocouldnotmakeittoday"),
    ("alice", "Great demo! Does it work on mobile too? 📱"),
    ("carol", "yes, I'm watching on my phone right now"),
    ("alice", "<b>not bold</b> — text is always shown as text"),
]


def test_screenshots_desktop_and_phone(gateway, live_video, alice, bob, staff, viewers, django_user_model):
    users = {"alice": alice, "bob": bob, "staff": staff, "carol": django_user_model.objects.create_user("carol")}
    off_loop(lambda: [services.post_comment(live_video, users[name], text) for name, text in SCREENSHOT_CHAT])

    desktop = viewers(viewport=DESKTOP).session_for(gateway, alice).open(gateway, live_video)
    desktop.wait_for_count(len(SCREENSHOT_CHAT))
    phone = viewers(viewport=PHONE).session_for(gateway, alice).open(gateway, live_video)
    phone.wait_for_count(len(SCREENSHOT_CHAT))
    for viewer in (desktop, phone):
        page = viewer.page
        page.wait_for_function("() => document.getElementById('viewer-count').textContent === '2'", timeout=8_000)
        # Nothing wider than the screen, and the long word wraps inside the panel.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.evaluate(
            "(() => { const s = document.getElementById('chat-scroll'); return s.scrollWidth <= s.clientWidth })()"
        )
        # The demo clip plays (muted autoplay); the player's controls fade once the pointer is away.
        page.mouse.move(0, 0)
        page.wait_for_function(
            "() => { const v = document.querySelector('video'); return v && !v.paused && v.currentTime > 0 }"
        )
    # Side by side on a desktop, the panel under the player on a phone.
    player = desktop.page.locator(".player").bounding_box()
    chat = desktop.page.locator("#chat").bounding_box()
    assert chat["x"] >= player["x"] + player["width"]
    player = phone.page.locator(".player").bounding_box()
    chat = phone.page.locator("#chat").bounding_box()
    assert chat["y"] >= player["y"] + player["height"]
    assert chat["width"] >= PHONE["width"] - 2

    # The typed-but-not-sent state reads well too.
    desktop.page.fill("#compose-text", "Can't wait for the Q&A")
    # The player as it looks once its controls fade (a few seconds without the pointer over it).
    for viewer in (desktop, phone):
        viewer.page.add_style_tag(content="video::-webkit-media-controls-panel { display: none !important; }")
    desktop.screenshot("video-desktop")
    phone.screenshot("video-phone")

    Video.objects.create(
        title="Coming up: launch keynote", state=Video.State.SCHEDULED, poster_url="/static/demo/poster.svg"
    )
    index = viewers(viewport=DESKTOP)
    index.page.goto(gateway.url("/"), wait_until="load")
    index.page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    index.screenshot("index-desktop")
