"""Text is stored as given and escaped on output (invariant 8): every place a
comment's text, a user's name or any other user-supplied text appears -- the
index, the video page, the moderation console, the forbidden page, the
account pages, every admin page, the API, the SSE and WebSocket frames --
shows it as text, never as markup.

The browser renders comments with textContent (tests/test_browser_chat.py
posts a payload and checks the DOM); here the server side: no HTML response
contains a payload unescaped, JSON is never served as HTML, and a comment
cannot break out of its SSE frame.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from comments import services
from comments.models import Ban, BlockedTerm, Comment, ModerationAction, Report
from dispatcher import backlog
from dispatcher.frames import Frame
from tests.base import client_for, make_user, staff
from videos.models import Video

# Each payload carries a marker, so a test can tell "escaped" from "absent".
PAYLOADS = {
    "xss1": '<script>alert("xss1")</script>',
    "xss2": "\"><img src=x onerror=alert('xss2')>",
    "xss3": "</script><script>alert('xss3')</script><!--",
    "xss4": "'><svg/onload=alert`xss4`>",
}
# What must never appear in an HTML response (the payloads' working parts).
DANGEROUS = ['<script>alert("xss1")', "<img src=x onerror", "</script><script>alert('xss3')", "<svg/onload"]

EVIL_NAME = "ev<b>il</b>\"'><img src=x onerror=alert('xss2')>"
# (A lone CR, which SSE also ends lines at, is refused as a control character
# on the way in; CRLF is stored as LF. JSON escapes both anyway.)
SSE_INJECTION = 'line\n\nevent: comment.removed\ndata: {"id": 1}\n\nid: 9999999999999-0\r\nretry: 1\n\nmore'


def assert_escaped(html: str, where: str, markers=("xss1", "xss2", "xss3", "xss4")) -> None:
    for bad in DANGEROUS:
        assert bad not in html, f"{where}: unescaped {bad!r}"
    assert "<b>il</b>" not in html, f"{where}: the user name is markup"
    for marker in markers:
        assert marker in html, f"{where}: {marker} is not on the page at all (so this proves nothing)"


@pytest.fixture
def evil(db, staff):
    """A video, user and comments made of payloads, in every state and table."""
    User = get_user_model()
    user = User.objects.create_user(EVIL_NAME, password="evil-password")  # create_user does not validate names
    video = Video.objects.create(
        title=PAYLOADS["xss1"] + " title", description=PAYLOADS["xss2"] + " description", state=Video.State.LIVE
    )
    comments = [services.post_comment(video, user, f"{text} #{i}").comment for i, text in enumerate(PAYLOADS.values())]
    BlockedTerm.objects.create(term="heldterm", action="hold", video=video)
    services.rules._terms_cache.clear()
    held = services.post_comment(video, user, PAYLOADS["xss3"] + " heldterm").comment
    reporter = make_user("reporter")
    report = services.report_comment(comments[0], reporter, PAYLOADS["xss4"] + " reason")
    ban = services.ban_user(video, user, staff, 600, PAYLOADS["xss2"] + " ban reason")
    return {"user": user, "video": video, "comments": comments, "held": held, "report": report, "ban": ban}


def page(client, url, status=200) -> str:
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code)
    assert r["Content-Type"].startswith("text/html"), (url, r["Content-Type"])
    return r.content.decode()


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# -- pages -----------------------------------------------------------------------------


def test_the_index_and_the_video_page(evil):
    video = evil["video"]
    assert_escaped(page(Client(), "/"), "index", markers=("xss1",))
    # Anonymous, then signed in as the user with the evil name (it is in the
    # header and in the page's JSON config).
    assert_escaped(page(Client(), f"/videos/{video.pk}/"), "video page", markers=("xss1", "xss2"))
    html = page(signed_in(evil["user"]), f"/videos/{video.pk}/")
    assert_escaped(html, "video page, signed in", markers=("xss1", "xss2"))
    config = re.search(r'<script id="lc-config" type="application/json">(.*?)</script>', html, re.S).group(1)
    assert json.loads(config)["user"]["name"] == EVIL_NAME  # the same text, safely encoded


def test_the_moderation_console(evil, staff):
    html = page(signed_in(staff), f"/moderation/videos/{evil['video'].pk}/")
    # Title, held comment, reported comment, report reason, names.
    assert_escaped(html, "console")
    config = re.search(r'<script id="mod-config" type="application/json">(.*?)</script>', html, re.S).group(1)
    data = json.loads(config)
    assert data["held"][0]["text"] == evil["held"].text
    assert data["reports"][0]["reason"] == evil["report"].reason


def test_the_forbidden_page_names_the_user_and_video_as_text(evil):
    html = page(signed_in(evil["user"]), f"/moderation/videos/{evil['video'].pk}/", status=403)
    assert_escaped(html, "forbidden page", markers=("xss1", "xss2"))


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/"])
def test_account_pages_escape_next_and_what_was_typed(db, path):
    payload = PAYLOADS["xss2"]
    html = page(Client(), f"{path}?next=/videos/1/{payload}")
    for bad in DANGEROUS:
        assert bad not in html
    r = Client().post(
        path,
        {"username": EVIL_NAME, "password": "x", "password1": "x", "password2": "y", "next": f"/{PAYLOADS['xss1']}"},
    )
    assert r.status_code in (200, 429)
    html = r.content.decode()
    assert_escaped(html, f"{path} after a failed POST", markers=("xss2",))


def test_the_404_page_does_not_echo_the_path(db):
    html = page(Client(), "/videos/1/" + PAYLOADS["xss1"], status=404)
    for bad in DANGEROUS:
        assert bad not in html


def admin_urls(evil) -> list[str]:
    comment, held, report, ban = evil["comments"][0], evil["held"], evil["report"], evil["ban"]
    action = ModerationAction.objects.filter(reason__contains="xss2").first()
    term = BlockedTerm.objects.get()
    urls = [
        "/admin/comments/comment/",
        f"/admin/comments/comment/?q={PAYLOADS['xss1']}",
        f"/admin/comments/comment/{comment.pk}/change/",
        f"/admin/comments/comment/{held.pk}/change/",
        "/admin/comments/report/",
        f"/admin/comments/report/{report.pk}/change/",
        "/admin/comments/ban/",
        f"/admin/comments/ban/{ban.pk}/change/",
        "/admin/comments/moderationaction/",
        "/admin/comments/blockedterm/",
        f"/admin/comments/blockedterm/{term.pk}/change/",
        "/admin/videos/video/",
        f"/admin/videos/video/{evil['video'].pk}/change/",
        "/admin/auth/user/",
        f"/admin/auth/user/{evil['user'].pk}/change/",
        "/admin/",
    ]
    if action is not None:
        urls.append(f"/admin/comments/moderationaction/{action.pk}/change/")
    return urls


def test_every_admin_page(evil, staff):
    staff.is_superuser = True  # every admin page, users included
    staff.save()
    client = signed_in(staff)
    seen = ""
    for url in admin_urls(evil):
        html = page(client, url)
        for bad in DANGEROUS:
            assert bad not in html, f"{url}: unescaped {bad!r}"
        assert "<b>il</b>" not in html, url
        seen += html
    for marker in ("xss1", "xss2", "xss3", "xss4"):
        assert marker in seen  # the payloads were on the pages, escaped


# -- the API and the streams ----------------------------------------------------------------


def test_the_api_returns_text_as_given_and_never_as_html(evil, staff):
    comment = evil["comments"][0]
    for accept in ("application/json", "text/html", "*/*", "text/html,application/xhtml+xml,*/*;q=0.8"):
        r = client_for(staff).get(f"/api/v1/comments/{comment.pk}/", HTTP_ACCEPT=accept)
        assert not r["Content-Type"].startswith("text/html"), accept  # no browsable API
        assert r["X-Content-Type-Options"] == "nosniff"
        if r.status_code == 200:
            assert r.json()["text"] == comment.text and r.json()["author"]["name"] == EVIL_NAME
    page_ = client_for(None).get(f"/api/v1/videos/{evil['video'].pk}/comments/").json()
    assert {c["text"] for c in page_["results"]} == {c.text for c in evil["comments"]}
    # Error messages that repeat what the client sent are JSON too.
    r = client_for(staff).post(f"/api/v1/videos/{evil['video'].pk}/bans/", {"user": PAYLOADS["xss1"]}, format="json")
    assert r.status_code == 404 and r["Content-Type"] == "application/json"


def parse_sse(raw: bytes) -> list[dict]:
    """The SSE parsing algorithm (WHATWG): lines end at CR, LF or CRLF."""
    events, event, data = [], {}, []
    for line in re.split(r"\r\n|\r|\n", raw.decode("utf-8")):
        if line == "":
            if data:
                events.append({**event, "data": "\n".join(data)})
            event, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field in ("event", "id", "retry"):
                event[field] = value
    return events


def test_a_comment_cannot_break_out_of_its_sse_or_websocket_frame(db, staff):
    video = Video.objects.create(title="v", state=Video.State.LIVE)
    texts = [SSE_INJECTION, "a\u2028b\u2029c", PAYLOADS["xss1"], 'x\\ny "q" \\u003c']
    posted = [services.post_comment(video, staff, text).comment for text in texts]
    frames = [Frame.from_stream(e) for e in backlog.latest(video.pk, 50).events]
    events = parse_sse(b"".join(f.sse for f in frames))
    assert [e.get("event") for e in events] == ["comment"] * len(texts)
    assert [e["id"] for e in events] == [c.cursor for c in posted]
    assert [json.loads(e["data"])["text"] for e in events] == [c.text for c in posted]
    for frame, comment in zip(frames, posted, strict=True):
        message = json.loads(frame.ws)
        assert (message["event"], message["id"], message["data"]["text"]) == ("comment", comment.cursor, comment.text)


def test_stored_text_is_the_text_sent(db, staff):
    """Escaping happens on output only: nothing is stripped or entity-encoded on the way in."""
    video = Video.objects.create(title="v", state=Video.State.LIVE)
    for text in PAYLOADS.values():
        r = client_for(staff).post(f"/api/v1/videos/{video.pk}/comments/", {"text": text}, format="json")
        assert r.status_code == 201 and r.json()["text"] == text
        assert Comment.objects.get(pk=r.json()["id"]).text == text
    assert not Ban.objects.exists() and not Report.objects.exists()
