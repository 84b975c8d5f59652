"""The chat panel outside the video page, in headless Chromium: a page of
another origin frames /videos/<id>/chat/ when EMBED_ALLOWED_ORIGINS lists it
and sees live comments arrive there; a page of an origin it does not list is
refused the frame; the video page's "Pop out chat" opens the panel in a window
of its own. (Headers and settings without a browser: tests/test_embed.py.)

The embedding pages are served by a small HTTP server of this module on
http://localhost:<port>, the livecomment gateway is http://127.0.0.1:<port>:
another origin and another site, as a blog that embeds the chat is."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from comments import services
from tests.base import *
from tests.browser import *
from tests.browser import Viewer, gateway_password, off_loop, wait_until
from tests.servers import Gateways
from videos.models import Video

pytestmark = [pytest.mark.browser, pytest.mark.processes]

EMBEDDING_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A blog that embeds the chat</title>
<style>
  body { margin: 0; font-family: Georgia, serif; background: #f6f3ee; color: #222; }
  header { padding: 18px 32px; background: #fff; border-bottom: 1px solid #ddd; font-size: 22px; font-weight: bold; }
  .layout { display: flex; gap: 28px; padding: 24px 32px; }
  article { flex: 1; max-width: 60ch; line-height: 1.6; font-size: 17px; }
  iframe { width: 380px; height: 620px; border: 1px solid #ccc; border-radius: 12px; background: #18181b; }
</style></head>
<body><header>The Example Gazette</header>
<div class="layout">
  <article><h1>Launch day, live</h1>
    <p>We are watching the launch together. The chat on the right is the broadcaster's own, embedded here:
    comments appear as viewers post them, wherever they watch.</p>
    <p>Scroll the chat to read back; sign in to join.</p></article>
  <iframe id="lc-chat" title="Live chat" src="{src}"></iframe>
</div></body></html>"""


class EmbeddingSite:
    """http://localhost:<port>/?src=<url>: a page that frames `src`."""

    def __init__(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                from urllib.parse import parse_qs, urlsplit

                src = parse_qs(urlsplit(self.path).query).get("src", [""])[0]
                body = EMBEDDING_PAGE.replace("{src}", src.replace('"', "")).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        site.origin = f"http://localhost:{self.port}"

    def page_url(self, src: str) -> str:
        from urllib.parse import quote

        return f"{self.origin}/?src={quote(src, safe='')}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sites():
    allowed, other = EmbeddingSite(), EmbeddingSite()
    yield allowed, other
    allowed.close()
    other.close()


@pytest.fixture(scope="module")
def embed_gateway(browser, django_db_setup, tmp_path_factory, sites):
    """One gateway for the module whose chat page the first site may frame."""
    allowed, _ = sites
    pool = Gateways(tmp_path_factory.mktemp("gateways"))
    gateway = pool.start(EMBED_ALLOWED_ORIGINS=allowed.origin, DJANGO_ALLOW_ASYNC_UNSAFE="")
    yield gateway
    pool.stop_all()


@pytest.fixture
def gateway(embed_gateway, transactional_db):
    assert embed_gateway.alive(), embed_gateway.log()
    return embed_gateway


@pytest.fixture
def live_video(transactional_db):
    return Video.objects.create(title="Launch day live", state=Video.State.LIVE)


@pytest.fixture
def viewer(browser):
    viewer = Viewer.new(browser, viewport={"width": 1100, "height": 720})
    yield viewer
    viewer.close()


def post(video, author, texts) -> list[int]:
    return off_loop(lambda: [services.post_comment(video, author, text).comment.pk for text in texts])


def test_it_shows_live_comments_in_a_frame_of_an_allowed_site(gateway, sites, live_video, alice, viewer):
    allowed, _ = sites
    chat_url = gateway.url(f"/videos/{live_video.pk}/chat/")
    page = viewer.page
    page.goto(allowed.page_url(chat_url), wait_until="domcontentloaded")
    assert page.evaluate("() => location.origin") == allowed.origin
    frame = page.frame_locator("#lc-chat")
    frame.locator("#conn-status[data-state=live]").wait_for()
    posted = post(live_video, alice, ["hello from the launch pad", "and hello to the blog readers"])
    frame.locator(f"#chat-list li.comment[data-id='{posted[-1]}']").wait_for()
    chat = page.frame(url=chat_url)
    assert chat is not None
    assert chat.eval_on_selector_all("#chat-list li.comment", "els => els.map(e => Number(e.dataset.id))") == posted
    assert chat.evaluate("() => document.documentElement.dataset.framed") == "1"
    viewer.screenshot("embed-allowed-site")
    # Signing in leaves the frame (the sign-in page refuses every frame): a tab
    # of its own, which comes back to the chat page, signed in; what is posted
    # there reaches the frame.
    assert chat.get_attribute("#signin-link", "href") == f"/accounts/login/?next=/videos/{live_video.pk}/chat/"
    password = gateway_password(alice)
    with viewer.context.expect_page() as opened:
        frame.locator("#signin-link").click()
    tab = opened.value
    tab.wait_for_load_state("domcontentloaded")
    assert tab.url.startswith(gateway.url("/accounts/login/"))
    tab.fill("#id_username", "alice")
    tab.fill("#id_password", password)
    with tab.expect_navigation():
        tab.click("#login-form button[type=submit]")
    assert tab.url == chat_url
    tab.wait_for_selector("#conn-status[data-state=live]")
    tab.fill("#compose-text", "signed in beside the blog")
    tab.press("#compose-text", "Enter")
    frame.locator("#chat-list li.comment .text", has_text="signed in beside the blog").wait_for()
    tab.close()
    assert viewer.errors == []


def test_it_refuses_the_frame_to_a_site_not_allowed(gateway, sites, live_video, viewer):
    _, other = sites
    chat_url = gateway.url(f"/videos/{live_video.pk}/chat/")
    page = viewer.page
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    responses: list[int] = []
    page.on("response", lambda r: responses.append(r.status) if r.url == chat_url else None)
    page.goto(other.page_url(chat_url), wait_until="load")
    wait_until(lambda: any("frame-ancestors" in text for text in console), timeout=10)
    assert any("frame-ancestors" in text for text in console), console
    assert responses == [200]  # the server answered; the browser refused to show it
    frame = page.frame(url=chat_url)
    assert frame is None or frame.query_selector("#chat") is None
    viewer.screenshot("embed-refused-site")


def test_it_pops_the_chat_out_into_a_window_of_its_own(gateway, live_video, alice, viewer):
    viewer.open(gateway, live_video)
    viewer.screenshot("embed-popout-button")
    with viewer.page.expect_popup() as opened:
        viewer.page.click("#popout-chat")
    popup = opened.value
    popup.wait_for_selector("#conn-status[data-state=live]")
    assert popup.url == gateway.url(f"/videos/{live_video.pk}/chat/")
    assert popup.query_selector("#popout-chat") is None and popup.query_selector(".player") is None
    assert viewer.page.url == gateway.url(f"/videos/{live_video.pk}/")  # the video page stays
    [comment_id] = post(live_video, alice, ["seen in both windows"])
    for page in (popup, viewer.page):
        page.wait_for_selector(f"#chat-list li.comment[data-id='{comment_id}']")
    assert popup.evaluate("() => document.documentElement.dataset.framed") == "0"
    Viewer(viewer.context, popup, viewer.errors).screenshot("embed-popout")
    assert viewer.errors == []
