"""Headless Chromium for the end-to-end tests of the viewer page.

Debian's `chromium` package driven by Playwright's Python package (never
`playwright install`: no browser downloads). `make test` installs Chromium
first when it is missing and we are root (`make browser-deps`); these tests
skip, saying why, only when it still cannot be found.

    from tests.browser import *  # noqa: F403  (the fixtures: browser, shared_gateway)
    from tests.browser import Viewer

    def test_x(browser, gateways, ...):
        viewer = Viewer.open(browser, gateway, video)
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]

# `from tests.browser import *` brings the fixtures.
__all__ = ["browser", "shared_gateway"]

ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API keeps an event loop marked as
    running in this thread while it is started, so it must be stopped before
    other test modules (pytest-asyncio, the ORM's async-safety check) run."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests: the playwright package is not installed (pip install -r requirements-dev.txt)")
    path = chromium_path()
    if path is None:
        pytest.skip(
            "browser tests: Chromium not found at /usr/bin/chromium (as root, `make browser-deps` installs "
            "Debian's chromium package; or set CHROMIUM=/path/to/chromium)"
        )
    # That running loop makes Django refuse ORM calls from this thread
    # (SynchronousOnlyOperation), though they are plain sync calls made between
    # browser steps; allow them for this module only. Gateway processes get the
    # check back (start_gateway).
    saved = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if saved is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = saved


@pytest.fixture(scope="module")
def shared_gateway(browser, django_db_setup, tmp_path_factory):
    """One gateway process for a whole module (starting one costs seconds).

    It shares the test database and Redis like any gateway; tests still use
    `transactional_db` (the `gateway` fixture in the test modules) so what
    they write is committed, and each makes its own video. A test that kills
    or restarts a server starts its own with the `gateways` fixture."""
    from tests.servers import Gateways

    pool = Gateways(tmp_path_factory.mktemp("gateways"))
    gateway = pool.start(**{ASYNC_UNSAFE: ""})
    yield gateway
    pool.stop_all()


def start_gateway(gateways, **env):
    """A gateway for browser tests: as gateways.start(), with Django's
    async-safety check on (the test process turned it off for itself)."""
    env.setdefault(ASYNC_UNSAFE, "")
    return gateways.start(**env)


def off_loop(func, *args, **kwargs):
    """Run `func` in a thread of its own and return its result.

    For write-path calls made while the browser is open: `publish()` uses
    async_to_sync, which refuses to run in a thread with a running event loop
    (Playwright's)."""
    from django.db import connections

    result: dict = {}

    def run():
        try:
            result["value"] = func(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            result["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in result:
        raise result["error"]
    return result["value"]


def gateway_password(user, password: str | None = None) -> str:
    """Give `user` a password the gateway processes can check.

    pytest-django hashes with MD5 in the test process for speed; the gateways
    run with the real settings, which do not accept MD5 hashes. Store a PBKDF2
    hash (few iterations: the hash names its own count) instead."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher
    from django.utils.crypto import get_random_string

    password = password or f"{user.get_username()}-password"
    user.password = PBKDF2PasswordHasher().encode(password, get_random_string(12), iterations=1000)
    user.save(update_fields=["password"])
    return password


class Viewer:
    """One browser context (its own cookies) with the video page open."""

    def __init__(self, context, page, errors: list):
        self.context = context
        self.page = page
        self.errors = errors  # uncaught page errors: a test may assert there are none

    @classmethod
    def new(cls, browser, viewport=DESKTOP, **options) -> Viewer:
        if viewport == PHONE:
            options.setdefault("is_mobile", True)
            options.setdefault("has_touch", True)
        context = browser.new_context(viewport=viewport, **options)
        context.set_default_timeout(10_000)
        page = context.new_page()
        errors: list = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return cls(context, page, errors)

    def sign_in(self, gateway, user, next_path: str = "/") -> Viewer:
        """Through the real login page, like a person."""
        password = gateway_password(user)
        username = user.get_username()
        page = self.page
        page.goto(gateway.url(f"/accounts/login/?next={next_path}"))
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        with page.expect_navigation():
            page.click("#login-form button[type=submit]")
        assert "/accounts/login/" not in page.url, f"sign-in as {username} failed: {page.inner_text('main')}"
        return self

    def session_for(self, gateway, user) -> Viewer:
        """Signed in without the login page (a session row and its cookie):
        for tests about something else; the login page has tests of its own."""
        from django.conf import settings
        from django.contrib.auth import (
            BACKEND_SESSION_KEY,
            HASH_SESSION_KEY,
            SESSION_KEY,
        )
        from django.contrib.sessions.backends.db import SessionStore

        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        self.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session.session_key, "url": gateway.base}]
        )
        return self

    def open(self, gateway, video, query: str = "") -> Viewer:
        self.page.goto(gateway.url(f"/videos/{video.pk}/{query}"), wait_until="domcontentloaded")
        self.wait_live()
        return self

    def wait_live(self, timeout: float = 10_000) -> None:
        self.page.wait_for_selector("#conn-status[data-state=live]", timeout=timeout)

    def status(self) -> str:
        return self.page.inner_text("#conn-status")

    def transport(self) -> str:
        return self.page.get_attribute("#chat", "data-transport")

    def comment(self, comment_id: int):
        return self.page.locator(f"#chat-list li.comment[data-id='{comment_id}']")

    def comment_texts(self) -> list[str]:
        return self.page.eval_on_selector_all("#chat-list li.comment .text", "els => els.map(e => e.textContent)")

    def comment_ids(self) -> list[int]:
        return self.page.eval_on_selector_all("#chat-list li.comment", "els => els.map(e => Number(e.dataset.id))")

    def post(self, text: str) -> None:
        """Type and press Enter, as a person does."""
        self.page.fill("#compose-text", text)
        self.page.press("#compose-text", "Enter")

    def wait_for_text(self, text: str, timeout: float = 10_000) -> None:
        self.page.wait_for_function(
            "t => [...document.querySelectorAll('#chat-list li.comment .text')].some(e => e.textContent === t)",
            arg=text,
            timeout=timeout,
        )

    def wait_for_count(self, count: int, timeout: float = 10_000) -> None:
        self.page.wait_for_function(
            "n => document.querySelectorAll('#chat-list li.comment').length === n", arg=count, timeout=timeout
        )

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        if os.environ.get("UPDATE_SCREENSHOTS"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, SCREENSHOTS / path.name)
        return path

    def close(self) -> None:
        self.context.close()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()
