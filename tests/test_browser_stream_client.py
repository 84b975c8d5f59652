"""The stream client module (static/js/livecomment-stream.js) in headless
Chromium, imported as a third-party page would: a cut connection resumes with
exactly the missed comments, over SSE and the WebSocket; a page of another
origin streams through it. And the pages' modules with DEBUG=0:
collectstatic's hashed names, imports included; and a plain EventSource
takes the server's `retry:`.
(SSE refused -> WebSocket is tests/test_browser_page.py, through the page.)"""

from __future__ import annotations

import re
import subprocess
import sys
from itertools import pairwise

import pytest

from comments import services
from tests.base import *
from tests.browser import *
from tests.browser import ROOT, Viewer, off_loop, start_gateway
from videos.models import Video

pytestmark = [pytest.mark.browser, pytest.mark.processes]

# Constructors the client accepts as options: here they let the test cut the
# connection and refuse reconnects (a 404 for SSE, a closed port for WS).
OPEN_STREAM = """async ({ videoId, transport }) => {
  const { openStream } = await import("/static/js/livecomment-stream.js");
  const t = (window.t = { blocked: false, connections: [], comments: [], state: null });
  class CutEventSource extends EventSource {
    constructor(url, options) {
      super(t.blocked ? "/static/blocked-by-test" : url, options);
      t.connections.push(this);
    }
    get readyState() { return this.wasCut ? 2 : super.readyState; }
    cut() { this.wasCut = true; this.close(); this.onerror(new Event("error")); }
  }
  class CutWebSocket extends WebSocket {
    constructor(url) {
      super(t.blocked ? "ws://127.0.0.1:1/" : url);
      t.connections.push(this);
    }
    cut() { this.close(); }
  }
  openStream({
    videoId, transport, EventSource: CutEventSource, WebSocket: CutWebSocket,
    onEvent(type, data, id) { if (type === "comment") t.comments.push([data.id, id]); },
    onState(state) { t.state = state; },
  });
}"""


@pytest.fixture
def live_video(transactional_db):
    return Video.objects.create(title="Launch day live", state=Video.State.LIVE)


@pytest.fixture
def gateway(shared_gateway, transactional_db):
    assert shared_gateway.alive(), shared_gateway.log()
    return shared_gateway


@pytest.fixture
def viewer(browser):
    viewer = Viewer.new(browser)
    yield viewer
    viewer.close()


def post(video, author, texts) -> list[int]:
    return off_loop(lambda: [services.post_comment(video, author, text).comment.pk for text in texts])


@pytest.mark.parametrize("transport", ["sse", "ws"])
def test_it_resumes_a_cut_connection_with_exactly_the_missed_comments(transport, gateway, live_video, alice, viewer):
    page = viewer.page
    page.goto(gateway.url("/"), wait_until="domcontentloaded")
    page.evaluate(OPEN_STREAM, {"videoId": live_video.pk, "transport": transport})
    page.wait_for_function("() => t.state === 'live'")
    before = post(live_video, alice, [f"before {i}" for i in range(3)])
    page.wait_for_function("() => t.comments.length === 3")

    page.evaluate("() => { t.blocked = true; t.cutAt = t.connections.length; t.connections.at(-1).cut(); }")
    page.wait_for_function("() => t.state === 'reconnecting'")
    during = post(live_video, alice, [f"while cut off {i}" for i in range(4)])
    page.wait_for_function("() => t.connections.length > t.cutAt")  # a refused reconnect
    page.evaluate("() => { t.blocked = false; }")
    page.wait_for_function("() => t.comments.length >= 7", timeout=20_000)
    page.wait_for_timeout(500)  # nothing more may come

    comments = page.evaluate("() => t.comments")
    assert [comment_id for comment_id, _ in comments] == before + during
    positions = [position for _, position in comments]
    assert len(set(positions)) == len(positions)
    assert page.evaluate("() => t.state") == "live"
    assert viewer.errors == []


def test_it_serves_the_pages_modules_under_hashed_names_with_debug_off(gateways, live_video, alice, viewer, tmp_path):
    static_root = tmp_path / "static"
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=gateways.env(DEBUG="0", STATIC_ROOT=str(static_root)),
        check=True,
        timeout=120,
    )
    gateway = start_gateway(gateways, DEBUG="0", STATIC_ROOT=str(static_root))
    loaded: list[str] = []
    viewer.page.on("response", lambda r: loaded.append(r.url) if r.url.endswith(".js") else None)
    viewer.open(gateway, live_video)
    post(live_video, alice, ["served hashed"])
    viewer.wait_for_text("served hashed")

    names = sorted({re.sub(r".*/static/js/", "", url) for url in loaded})
    stems = [re.sub(r"\.[0-9a-f]{12}\.js$", "", name) for name in names]
    assert sorted(stems) == [
        "chat",
        "chat-pin",
        "chat-replay",
        "chat-window",
        "livecomment-api",
        "livecomment-stream",
    ], names
    assert all(re.search(r"\.[0-9a-f]{12}\.js$", name) for name in names), names
    assert viewer.errors == []


def test_it_streams_to_a_page_of_another_origin_that_imports_the_module(gateway, live_video, alice, viewer):
    # The page is http://localhost:<port>, the livecomment server
    # http://127.0.0.1:<port>: another origin, as a third-party site's page
    # is. The module comes cross-origin (a module script needs CORS), and so
    # does the SSE stream.
    page = viewer.page
    server = gateway.base
    page.goto(gateway.url("/healthz").replace("127.0.0.1", "localhost"), wait_until="domcontentloaded")
    assert page.evaluate("() => location.origin") != server
    page.evaluate(
        """async ({ server, videoId }) => {
          const { openStream } = await import(`${server}/static/js/livecomment-stream.js`);
          const t = (window.t = { comments: [], state: null, transports: [] });
          openStream({
            base: server, videoId, transport: "sse",
            onEvent(type, data, id) { if (type === "comment") t.comments.push([data.id, id]); },
            onState(state) { t.state = state; },
            onTransport(transport) { t.transports.push(transport); },
          });
        }""",
        {"server": server, "videoId": live_video.pk},
    )
    page.wait_for_function("() => t.state === 'live'")
    posted = post(live_video, alice, ["to another origin 1", "to another origin 2"])
    page.wait_for_function("() => t.comments.length === 2")
    assert [comment_id for comment_id, _ in page.evaluate("() => t.comments")] == posted
    assert set(page.evaluate("() => t.transports")) == {"sse"}
    assert viewer.errors == []


def test_it_has_eventsource_honour_the_servers_retry(gateways, live_video, viewer):
    # A plain EventSource (no module): `retry:` is a line of its own, not a
    # block, and Chromium still takes it. With the gateway gone, it retries
    # every 300 ms (the server's value), not every 3 s (its default).
    gateway = start_gateway(gateways, REALTIME_RETRY_MS="300")
    page = viewer.page
    page.goto(gateway.url("/healthz"), wait_until="domcontentloaded")
    page.evaluate(
        """(url) => {
          const t = (window.t = { opened: 0, errors: [] });
          const source = new EventSource(url);
          source.onopen = () => { t.opened += 1; };
          source.onerror = () => { t.errors.push(performance.now()); };
          source.addEventListener("viewers", () => { t.viewers = true; });
        }""",
        f"/api/v1/videos/{live_video.pk}/stream",
    )
    page.wait_for_function("() => t.viewers === true")  # the first event: retry: came before it
    gateway.kill()
    page.wait_for_function("() => t.errors.length >= 4", timeout=5_000)
    errors = page.evaluate("() => t.errors")
    gaps = [later - earlier for earlier, later in pairwise(errors)]
    assert all(200 <= gap < 2000 for gap in gaps), gaps
    viewer.errors.clear()  # the refused reconnects' console messages
