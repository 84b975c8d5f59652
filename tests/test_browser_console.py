"""The moderation console end to end: headless Chromium against a real gateway.

A per-video moderator opens /moderation/videos/<id>/ (signing in through the
login page, which sends them back to the console) and keeps the chat clean
with one click each, while a viewer's SSE connection checks that every action
reaches viewers: a held comment shows in the console only, and reaches the
viewer once approved; a removal reaches the viewer; a time-out stops the
author's next post (403 banned); a report arrives live and is dismissed.
Also the screenshot docs/screenshots/console.png (UPDATE_SCREENSHOTS=1 copies
it there from test-artifacts/).

Run alone: .venv/bin/pytest tests/test_browser_console.py
"""

from __future__ import annotations

import httpx
import pytest
from rest_framework.authtoken.models import Token

from comments import services
from comments.models import Ban, BlockedTerm, Comment, Report
from tests.base import alice, bob, make_user, staff
from tests.browser import DESKTOP, Viewer, browser, off_loop, shared_gateway
from tests.realtime_clients import SSEClient
from videos.models import Video

pytestmark = [pytest.mark.browser, pytest.mark.processes]

CHAT = [
    ("bob", "hey everyone 👋 just joined"),
    ("carol", "the audio is so much better than last week 🔥"),
    ("dan", "when does the Q&A start?"),
    ("bob", "Whenwillthereplaybeavailable?askingforafriendwhocouldnotmakeittoday"),
    ("erin", "first time here, this is great"),
    ("carol", "<b>not bold</b> — text is always shown as text"),
    ("dan", "can you zoom in on the slides please"),
    ("erin", "lol"),
]


@pytest.fixture
def gateway(shared_gateway, transactional_db):
    assert shared_gateway.alive(), shared_gateway.log()
    return shared_gateway


@pytest.fixture
def live_video(transactional_db):
    video = Video.objects.create(title="Launch day live", state=Video.State.LIVE, stream_url="/static/demo/demo.mp4")
    BlockedTerm.objects.create(term="spoiler", action="hold", video=video)
    services.rules._terms_cache.clear()
    return video


@pytest.fixture
def console(browser):
    opened: list[Viewer] = []

    def make() -> Viewer:
        viewer = Viewer.new(browser, viewport=DESKTOP)
        opened.append(viewer)
        return viewer

    yield make
    for viewer in opened:
        viewer.close()


def post(video, author, text) -> Comment:
    """Through the write path, in a thread of its own (the browser's loop runs in this one)."""
    return off_loop(services.post_comment, video, author, text).comment


def row(page, comment_id: int):
    return page.locator(f"#stream li.row[data-id='{comment_id}']")


def event_ids(sse: SSEClient, kind: str) -> list[int]:
    return [e["data"]["id"] for e in sse.of_type(kind)]


def test_a_moderator_keeps_the_chat_clean_from_the_console(gateway, live_video, alice, bob, console):
    video = live_video
    mod = make_user("mila")  # a per-video moderator, not staff
    video.moderators.add(mod)
    users = {"bob": bob, "carol": make_user("carol"), "dan": make_user("dan"), "erin": make_user("erin")}
    off_loop(lambda: [services.post_comment(video, users[name], text) for name, text in CHAT])
    # Held before the console opens: it comes with the page.
    early_held = post(video, users["dan"], "SPOILER: the ending is a dream")
    assert early_held.status == Comment.Status.HELD

    viewer = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    try:
        moderator = console().sign_in(gateway, mod, next_path=f"/moderation/videos/{video.pk}/")
        page = moderator.page
        assert page.url.endswith(f"/moderation/videos/{video.pk}/"), page.url
        page.wait_for_selector("#c-conn[data-state=live]")
        page.wait_for_function("n => document.querySelectorAll('#stream li.row').length === n", arg=len(CHAT) + 1)
        assert page.inner_text("#held-count") == "1"
        # User text is text: the <b> came through as characters.
        assert page.locator("#stream b", has_text="not bold").count() == 0
        assert page.locator("#stream .txt", has_text="<b>not bold</b>").count() == 1

        # 1. A comment with a hold term: in the console at once, held; never to the viewer.
        held = post(video, alice, "big spoiler: who wins tonight")
        assert held.status == Comment.Status.HELD
        card = page.locator(f"#held-list li[data-id='{held.pk}']")
        card.wait_for(timeout=3_000)
        assert row(page, held.pk).get_attribute("data-status") == "held"
        assert page.inner_text("#held-count") == "2"
        # Approve from the queue: it leaves the queue and reaches the viewer.
        card.locator("button[data-act=approve]").click()
        card.wait_for(state="detached", timeout=3_000)
        assert viewer.wait_until(lambda c: held.pk in event_ids(c, "comment"), timeout=3), viewer.events
        approved = [e for e in viewer.comments() if e["data"]["id"] == held.pk][0]
        assert approved["data"]["cursor"] == held.cursor  # its original place in the chat
        assert early_held.pk not in event_ids(viewer, "comment")  # still held: never shown
        page.wait_for_function(
            f"() => document.querySelector(\"#stream li.row[data-id='{held.pk}']\").dataset.status === 'visible'"
        )
        Comment.objects.get(pk=held.pk, status=Comment.Status.VISIBLE)

        # 2. Remove a comment from its row in the live chat: the viewer is told at once.
        rude = post(video, alice, "you are all idiots")
        row(page, rude.pk).wait_for(timeout=3_000)
        assert viewer.wait_until(lambda c: rude.pk in c.comment_ids(), timeout=3)
        row(page, rude.pk).locator("button[data-act=remove]").click()
        assert viewer.wait_until(lambda c: rude.pk in event_ids(c, "comment.removed"), timeout=3), viewer.events
        page.wait_for_function(
            f"() => document.querySelector(\"#stream li.row[data-id='{rude.pk}']\").dataset.status === 'removed'"
        )
        Comment.objects.get(pk=rude.pk, status=Comment.Status.REMOVED)

        # 3. A report arrives live (moderators only) and is dismissed with one click.
        reported = post(video, users["erin"], "buy followers at example.com")
        row(page, reported.pk).wait_for(timeout=3_000)
        off_loop(services.report_comment, reported, bob, "spam")
        report_card = page.locator(f"#reports-list li[data-id='{reported.pk}']")
        report_card.wait_for(timeout=3_000)
        assert "spam" in report_card.inner_text()
        assert not viewer.of_type("report.created")
        report_card.locator("button[data-act=dismiss]").click()
        report_card.wait_for(state="detached", timeout=3_000)
        assert Report.objects.get(comment=reported).resolved

        # 4. Time-out (10 min) from the row: the author's next post is refused, 403 banned.
        row(page, rude.pk).locator("button[data-act=timeout]").click()
        page.locator("#bans-list li[data-user='%d']" % alice.pk).wait_for(timeout=3_000)
        ban = Ban.objects.get(user=alice, video=video)
        assert ban.expires_at is not None and 590 <= (ban.expires_at - ban.created).total_seconds() <= 610
        token, _ = Token.objects.get_or_create(user=alice)
        answer = httpx.post(
            gateway.url(f"/api/v1/videos/{video.pk}/comments/"),
            json={"text": "let me back in"},
            headers={"Authorization": f"Token {token.key}"},
            timeout=10,
        )
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "banned"

        # 5. Slow mode from the switch reaches viewers as video.settings.
        page.select_option("#c-slow", "10")
        assert viewer.wait_until(
            lambda c: any(e["data"]["slow_mode_seconds"] == 10 for e in c.of_type("video.settings")), timeout=3
        )
        assert Video.objects.get(pk=video.pk).slow_mode_seconds == 10

        # The mod log lists what was done, newest first.
        page.wait_for_function(
            "() => ['slow mode', 'timed out', 'dismissed report on', 'removed a comment by', 'approved a comment by'].every("
            "v => [...document.querySelectorAll('#log-list .verb')].some(e => e.textContent === v))",
            timeout=5_000,
        )
        verbs = page.eval_on_selector_all("#log-list .verb", "els => els.map(e => e.textContent)")
        assert verbs[:5] == [
            "slow mode",
            "timed out",
            "dismissed report on",
            "removed a comment by",
            "approved a comment by",
        ]
        # The filter narrows the chat to one user (or some text), and back.
        page.fill("#stream-filter", "erin")
        shown = page.eval_on_selector_all("#stream li.row:not([hidden]) .uname", "els => els.map(e => e.textContent)")
        assert shown and set(shown) == {"erin"}
        page.fill("#stream-filter", "")
        page.locator("#stream-filter").blur()
        assert page.locator("#stream li.row[hidden]").count() == 0
        assert moderator.errors == []

        # The screenshot: the console as a moderator sees it, mid-stream.
        page.mouse.move(0, 0)
        post(video, users["carol"], "spoilers in chat again? please don't")  # held: "spoiler" matches
        post(video, users["dan"], "thanks mods 🙏")
        page.wait_for_function("() => document.getElementById('held-count').textContent === '2'")
        off_loop(services.report_comment, Comment.objects.get(text="lol"), users["dan"], "low effort")
        page.locator("#reports-list li").first.wait_for()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.evaluate("document.getElementById('toasts').replaceChildren()")  # the steady state, not the last clicks
        moderator.screenshot("console")
    finally:
        viewer.close()


def test_ban_removes_their_recent_comments_for_everyone_then_lift_and_restore(gateway, live_video, bob, staff, console):
    video = live_video
    first = post(video, bob, "spam spam spam")
    second = post(video, bob, "more spam")
    viewer = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    try:
        moderator = console().sign_in(gateway, staff, next_path=f"/moderation/videos/{video.pk}/")
        page = moderator.page
        page.wait_for_selector("#c-conn[data-state=live]")
        row(page, second.pk).wait_for()
        assert viewer.wait_until(lambda c: {first.pk, second.pk} <= set(c.comment_ids()), timeout=3)

        row(page, second.pk).locator("button[data-act=ban]").click()
        assert viewer.wait_until(lambda c: {first.pk, second.pk} <= set(event_ids(c, "comment.removed")), timeout=3)
        ban_row = page.locator(f"#bans-list li[data-user='{bob.pk}']")
        ban_row.wait_for(timeout=3_000)
        assert ban_row.locator(".tag").inner_text().lower() == "ban"
        assert Ban.objects.get(user=bob, video=video).expires_at is None
        for comment in (first, second):
            page.wait_for_function(
                f"() => document.querySelector(\"#stream li.row[data-id='{comment.pk}']\").dataset.status === 'removed'"
            )

        # Lift from the bans panel; restore one comment from its row.
        ban_row.locator("button.act-lift").click()
        ban_row.wait_for(state="detached", timeout=3_000)
        assert Ban.objects.get(user=bob, video=video).lifted_at is not None
        row(page, first.pk).locator("button[data-act=restore]").click()
        assert viewer.wait_until(lambda c: c.comment_ids().count(first.pk) == 2, timeout=3)
        Comment.objects.get(pk=first.pk, status=Comment.Status.VISIBLE)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#log-list .verb')].map(e => e.textContent).slice(0, 4).join('|')"
            " === 'restored a comment by|lifted ban on|removed a comment by|removed a comment by'"
        )
        assert moderator.errors == []
    finally:
        viewer.close()


def test_a_viewer_opening_the_console_gets_403_and_anonymous_goes_to_sign_in(gateway, live_video, alice, console):
    page = console().sign_in(gateway, alice).page
    response = page.goto(gateway.url(f"/moderation/videos/{live_video.pk}/"))
    assert response.status == 403
    assert "Not a moderator here" in page.inner_text("main")

    anonymous = console().page
    anonymous.goto(gateway.url(f"/moderation/videos/{live_video.pk}/"))
    assert "/accounts/login/?next=/moderation/videos/" in anonymous.url
