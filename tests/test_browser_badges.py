"""Role badges in headless Chromium against a real gateway: a live comment by
the video's host, a moderator and staff shows "Host", "Mod" and "Staff" next
to the author's name, as text with the full role for screen readers; a
viewer's shows none. The console tags the same rows. Screenshot:
test-artifacts/badges.png (UPDATE_SCREENSHOTS=1 copies it to docs/screenshots/).
"""

from __future__ import annotations

import pytest

from comments import services
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


def test_it_shows_role_badges_on_live_comments(gateway, alice, bob, staff, viewers):
    video = Video.objects.create(
        title="Badges live", state=Video.State.LIVE, stream_url="/static/demo/demo.mp4", owner=alice
    )
    mod = make_user("mod")
    video.moderators.add(mod)
    watcher = viewers().sign_in(gateway, bob).open(gateway, video)
    watcher.wait_live()
    said = {
        "alice": "welcome, everyone",
        "mod": "be kind please",
        "staff": "site notice",
        "bob": "hi from a viewer",
    }
    users = {"alice": alice, "mod": mod, "staff": staff, "bob": bob}
    comments = {}
    for name, text in said.items():  # live, after the page loaded: through the stream
        comments[name] = off_loop(services.post_comment, video, users[name], text).comment
        watcher.wait_for_text(text, timeout=5_000)

    def badges(name):
        row = watcher.comment(comments[name].pk)
        return [b.inner_text() for b in row.locator(".role-badge span[aria-hidden=true]").all()]

    assert badges("alice") == ["Host"]
    assert badges("mod") == ["Mod"]
    assert badges("staff") == ["Staff"]
    assert badges("bob") == []
    # Next to the name, and what a screen reader reads: the whole word.
    host_row = watcher.comment(comments["alice"].pk)
    assert host_row.locator(".author + .role-badge").count() == 1
    assert host_row.locator(".role-badge .visually-hidden").text_content() == " (host)"
    assert host_row.locator(".role-badge").get_attribute("title") == "Host of this video"
    assert "by-host" in (host_row.get_attribute("class") or "")
    watcher.screenshot("badges")

    # The console, as the moderator sees the same comments.
    console = viewers().sign_in(gateway, mod, next_path=f"/moderation/videos/{video.pk}/")
    console.page.wait_for_selector("#c-conn[data-state=live]")
    row = console.page.locator(f"#stream li.row[data-id='{comments['alice'].pk}']")
    row.wait_for(timeout=5_000)
    assert row.locator(".tag-role").text_content() == "Host"
    assert row.locator(".tag-role").get_attribute("aria-label") == "Host of this video"
    staff_row = console.page.locator(f"#stream li.row[data-id='{comments['staff'].pk}'] .tag-role")
    assert staff_row.text_content() == "Staff"
    assert console.page.locator(f"#stream li.row[data-id='{comments['bob'].pk}'] .tag-role").count() == 0
    assert watcher.errors == [] and console.errors == []
