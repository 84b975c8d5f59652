"""The pin in headless Chromium against a real gateway: a comment pinned
through the API shows above the list of a viewer already watching, live; a
late joiner sees the pin at once (the stream's first event); an announcement
replaces it; a viewer can dismiss it (kept per pin across a reload, a new pin
shows again); unpinning clears it. The console pins and unpins from its rows
and posts announcements. Screenshot: test-artifacts/pin.png
(UPDATE_SCREENSHOTS=1 copies it to docs/screenshots/).
"""

from __future__ import annotations

import pytest

from comments import services
from comments.services import pins
from tests.base import *
from tests.browser import *
from tests.browser import Viewer, off_loop
from videos.models import Video

pytestmark = [pytest.mark.browser, pytest.mark.processes]


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


def pin_text(viewer) -> str | None:
    box = viewer.page.locator("#chat-pin")
    return None if box.is_hidden() else box.locator(".pin-text").inner_text()


def test_it_shows_the_pin_live_and_first_to_late_joiners(gateway, alice, bob, staff, viewers):
    video = Video.objects.create(title="Pinned live", state=Video.State.LIVE, stream_url="/static/demo/demo.mp4")
    for n in range(3):
        off_loop(services.post_comment, video, bob, f"chatter {n}")
    rule = off_loop(services.post_comment, video, alice, "Be kind: no spoilers for the finale!").comment
    watcher = viewers().sign_in(gateway, bob).open(gateway, video)
    watcher.wait_live()
    assert pin_text(watcher) is None

    pinned = off_loop(pins.pin_comment, video, staff, rule)
    watcher.page.wait_for_selector("#chat-pin:not([hidden])", timeout=5_000)
    assert pin_text(watcher) == rule.text
    assert watcher.page.locator("#chat-pin .pin-label").inner_text().lower() == "pinned"
    assert watcher.page.locator("#chat-pin").get_attribute("data-cursor") == pinned.cursor

    late = viewers().open(gateway, video)
    late.page.wait_for_selector("#chat-pin:not([hidden])", timeout=5_000)
    assert pin_text(late) == rule.text
    late.wait_live()
    watcher.screenshot("pin")

    # An announcement replaces it, on both pages.
    off_loop(pins.pin_announcement, video, staff, "Q&A starts at 9pm!", 600)
    for viewer in (watcher, late):
        viewer.page.wait_for_function(
            "() => document.querySelector('#chat-pin .pin-text').textContent === 'Q&A starts at 9pm!'", timeout=5_000
        )
    assert late.page.locator("#chat-pin .pin-label").inner_text().lower() == "announcement"

    # Dismissed on one page: hidden there, across a reload too; a new pin shows again.
    late.page.click("#chat-pin .pin-dismiss")
    assert pin_text(late) is None and pin_text(watcher) == "Q&A starts at 9pm!"
    late.page.reload()
    late.wait_live()
    late.page.wait_for_timeout(300)
    assert pin_text(late) is None
    off_loop(pins.pin_announcement, video, staff, "Giveaway now")
    late.page.wait_for_selector("#chat-pin:not([hidden])", timeout=5_000)
    assert pin_text(late) == "Giveaway now"

    off_loop(pins.unpin, video, staff)
    for viewer in (watcher, late):
        viewer.page.wait_for_selector("#chat-pin", state="hidden", timeout=5_000)
    assert watcher.errors == [] and late.errors == []


def test_it_pins_and_unpins_from_the_console(gateway, alice, staff, viewers):
    video = Video.objects.create(title="Console pins", state=Video.State.LIVE)
    comment = off_loop(services.post_comment, video, alice, "pin this one").comment
    watcher = viewers().open(gateway, video)
    watcher.wait_live()
    console = viewers().sign_in(gateway, staff, next_path=f"/moderation/videos/{video.pk}/")
    console.page.wait_for_selector("#c-conn[data-state=live]")
    row = console.page.locator(f"#stream li.row[data-id='{comment.pk}']")
    row.wait_for(timeout=5_000)
    row.locator("button[data-act=pin]").click()
    watcher.page.wait_for_selector("#chat-pin:not([hidden])", timeout=5_000)
    assert pin_text(watcher) == "pin this one"
    row.locator("button[data-act=unpin]").wait_for(timeout=5_000)
    assert "pin this one" in console.page.locator("#c-pin-text").inner_text()

    console.page.fill("#c-announce-text", "Stream ends in 10 minutes")
    console.page.select_option("#c-announce-duration", "600")
    console.page.click("#c-announce-send")
    watcher.page.wait_for_function(
        "() => document.querySelector('#chat-pin .pin-text').textContent === 'Stream ends in 10 minutes'",
        timeout=5_000,
    )
    row.locator("button[data-act=pin]").wait_for(timeout=5_000)  # the comment is no longer the pin
    console.page.click("#c-unpin")
    watcher.page.wait_for_selector("#chat-pin", state="hidden", timeout=5_000)
    assert console.page.locator("#c-unpin").is_hidden()
    assert watcher.errors == [] and console.errors == []
