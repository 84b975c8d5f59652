"""The chat panel outside the video page, server side (no browser): the
chat-only page /videos/<id>/chat/ (pop-out window and frames of other sites),
who may frame it (EMBED_ALLOWED_ORIGINS: CSP frame-ancestors, X-Frame-Options),
the settings behind it and their warning, and `{% live_chat video %}`.
In Chromium: tests/test_browser_embed.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, RequestContext, Template, TemplateSyntaxError
from django.test import RequestFactory

from livecomment.lib.checks import embed_cookies_check
from livecomment.lib.embed import parse_origin, parse_origins
from tests.base import *
from tests.servers import ROOT


def page_config(html: str) -> dict:
    match = re.search(r'<script id="lc-config" type="application/json">(.*?)</script>', html, re.DOTALL)
    assert match, "no lc-config on the page"
    return json.loads(match.group(1))


def test_it_serves_the_chat_panel_alone_on_the_chat_page(client, video, alice):
    client.force_login(alice)
    response = client.get(f"/videos/{video.pk}/chat/")
    assert response.status_code == 200
    html = response.content.decode()
    config = page_config(html)
    assert config["videoId"] == video.pk and config["streamUrl"] == f"/api/v1/videos/{video.pk}/stream"
    assert config["user"] == {"id": alice.pk, "name": "alice"}
    assert 'id="chat"' in html and 'id="chat-list"' in html and 'id="compose-text"' in html
    assert "js/chat.js" in html and "css/chat.css" in html
    assert 'class="player' not in html and 'class="topbar' not in html  # the panel alone
    assert 'id="popout-chat"' not in html  # it is the pop-out
    assert "csrftoken" in response.cookies  # posting from it needs the CSRF cookie


def test_it_puts_a_pop_out_button_on_the_video_page(client, video):
    html = client.get(f"/videos/{video.pk}/").content.decode()
    assert f'href="/videos/{video.pk}/chat/"' in html and 'id="popout-chat"' in html
    assert "js/chat-window.js" in html


def test_it_answers_404_for_the_chat_page_of_no_video(client, db):
    assert client.get("/videos/999999/chat/").status_code == 404


def test_it_refuses_every_frame_by_default(client, video, settings):
    assert settings.EMBED_ALLOWED_ORIGINS == []
    chat = client.get(f"/videos/{video.pk}/chat/")
    assert chat.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert chat.headers["X-Frame-Options"] == "DENY"
    assert client.get(f"/videos/{video.pk}/").headers["X-Frame-Options"] == "DENY"


def test_it_lets_only_the_configured_origins_frame_the_chat_page(client, video, settings):
    settings.EMBED_ALLOWED_ORIGINS = ["https://blog.example.com", "https://*.example.org:8443"]
    chat = client.get(f"/videos/{video.pk}/chat/")
    assert (
        chat.headers["Content-Security-Policy"] == "frame-ancestors https://blog.example.com https://*.example.org:8443"
    )
    assert "X-Frame-Options" not in chat.headers  # DENY would contradict the CSP
    # Every other page still refuses.
    for path in (f"/videos/{video.pk}/", "/", "/accounts/login/", f"/api/v1/videos/{video.pk}/"):
        response = client.get(path)
        assert response.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors" not in response.headers.get("Content-Security-Policy", ""), path


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("https://Blog.Example.com", "https://blog.example.com"),
        ("https://blog.example.com/", "https://blog.example.com"),
        ("http://localhost:8001", "http://localhost:8001"),
        ("https://*.example.com", "https://*.example.com"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_it_reads_an_origin(value, origin):
    assert parse_origin(value) == origin


@pytest.mark.parametrize(
    "value",
    [
        "blog.example.com",
        "ftp://blog.example.com",
        "https://blog.example.com/embed",
        "https://blog.example.com?x=1",
        "https://user@blog.example.com",
        "https://blog.example.com:99999",
        "https://exa mple.com",
        "https://a.com;script-src",
        "https://'self'",
        "*",
        "https://",
    ],
)
def test_it_refuses_what_is_not_an_origin(value):
    with pytest.raises(ImproperlyConfigured, match="EMBED_ALLOWED_ORIGINS"):
        parse_origin(value)


def test_it_drops_blanks_and_repeats_from_the_list():
    assert parse_origins(["https://a.example", " ", "https://A.example/"]) == ["https://a.example"]


def settings_error(**env) -> str:
    """Load the settings in a process of their own, with `env`: the error, if any."""
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "livecomment.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stderr if result.returncode else ""


def test_it_fails_at_start_on_a_bad_origin_or_samesite():
    assert "EMBED_ALLOWED_ORIGINS" in settings_error(
        EMBED_ALLOWED_ORIGINS="https://ok.example,https://bad.example/path"
    )
    assert "SESSION_COOKIE_SAMESITE must be Lax, Strict or None" in settings_error(SESSION_COOKIE_SAMESITE="none-ish")
    assert "CSRF_COOKIE_SAMESITE=None needs CSRF_COOKIE_SECURE=1" in settings_error(
        CSRF_COOKIE_SAMESITE="None", CSRF_COOKIE_SECURE="0"
    )
    assert (
        settings_error(
            EMBED_ALLOWED_ORIGINS="https://ok.example",
            SESSION_COOKIE_SAMESITE="None",
            CSRF_COOKIE_SAMESITE="None",
            SESSION_COOKIE_SECURE="1",
            CSRF_COOKIE_SECURE="1",
        )
        == ""
    )


def test_it_sets_samesite_none_cookies_when_told(client, video, alice, settings):
    settings.SESSION_COOKIE_SAMESITE = settings.CSRF_COOKIE_SAMESITE = "None"
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    client.force_login(alice)
    cookie = client.get(f"/videos/{video.pk}/chat/").cookies["csrftoken"]
    assert cookie["samesite"] == "None" and cookie["secure"]


def test_it_warns_when_framed_chat_cannot_sign_in(settings):
    settings.EMBED_ALLOWED_ORIGINS = []
    assert embed_cookies_check() == []
    settings.EMBED_ALLOWED_ORIGINS = ["https://blog.example.com"]
    [warning] = embed_cookies_check()
    assert warning.id == "livecomment.W001"
    assert "SESSION_COOKIE_SAMESITE=Lax and CSRF_COOKIE_SAMESITE=Lax" in warning.msg
    settings.SESSION_COOKIE_SAMESITE = "None"
    [warning] = embed_cookies_check()
    assert "SESSION_COOKIE_SAMESITE" not in warning.msg and "CSRF_COOKIE_SAMESITE=Lax" in warning.msg
    settings.CSRF_COOKIE_SAMESITE = "None"
    assert embed_cookies_check() == []


def test_it_registers_the_warning_with_the_check_framework(settings):
    from django.core import checks

    settings.EMBED_ALLOWED_ORIGINS = ["https://blog.example.com"]
    assert "livecomment.W001" in [m.id for m in checks.run_checks()]


def test_it_renders_the_panel_with_the_template_tag_in_a_plain_template(video, alice):
    request = RequestFactory().get("/somewhere/else/")
    request.user = alice
    html = Template("<main>{% load livecomment %}<h1>My site</h1>{% live_chat video %}</main>").render(
        RequestContext(request, {"video": video})
    )
    config = page_config(html)
    assert config["videoId"] == video.pk and config["user"] == {"id": alice.pk, "name": "alice"}
    assert 'id="chat"' in html and 'id="compose-text"' in html and 'name="csrfmiddlewaretoken"' in html
    assert "/static/css/chat.css" in html and "/static/js/chat.js" in html
    assert 'id="popout-chat"' in html
    assert "CSRF_COOKIE_NEEDS_UPDATE" in request.META  # the response will carry the CSRF cookie


def test_it_renders_the_template_tag_for_an_anonymous_viewer(video):
    from django.contrib.auth.models import AnonymousUser

    request = RequestFactory().get("/blog/post/")
    request.user = AnonymousUser()
    html = Template("{% load livecomment %}{% live_chat video %}").render(RequestContext(request, {"video": video}))
    assert page_config(html)["user"] is None
    assert 'id="signin-link"' in html and "next=/blog/post/" in html


def test_it_says_what_the_template_tag_needs(video):
    with pytest.raises(TemplateSyntaxError, match="request"):
        Template("{% load livecomment %}{% live_chat video %}").render(Context({"video": video}))
    request = RequestFactory().get("/")
    with pytest.raises(TemplateSyntaxError, match="takes a Video"):
        Template("{% load livecomment %}{% live_chat 3 %}").render(RequestContext(request, {}))
