"""Who may do what, beyond the status of each route and role (that is the
endpoint x role matrix, tests/test_endpoint_matrix.py): a post cannot choose
its author, video or status; moderator-only events on the streams; CSRF on
session-authenticated writes; the WebSocket origin check; token revocation;
password hashing; and `manage.py check --deploy` with production settings.

Roles everywhere: anonymous, viewer (signed in), author, moderator of another
video, moderator of this video, staff.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys

import httpx
import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from comments import services
from comments.models import Ban, BlockedTerm, Comment, Report
from tests.base import alice, bob, client_for, make_user, staff, video
from tests.realtime_clients import SSEClient, WSClient
from tests.servers import ROOT
from videos.models import Video

ROLES = ["anonymous", "viewer", "author", "other_video_moderator", "video_moderator", "staff"]
MODERATORS = {"video_moderator", "staff"}


@pytest.fixture
def world(db, video, alice, bob, staff):
    other_video = Video.objects.create(title="Other", state=Video.State.LIVE)
    other_mod = make_user("othermod")
    other_video.moderators.add(other_mod)
    video_mod = make_user("videomod")
    video.moderators.add(video_mod)
    return {
        "anonymous": None,
        "viewer": bob,
        "author": alice,
        "other_video_moderator": other_mod,
        "video_moderator": video_mod,
        "staff": staff,
    }


def comment_in(video, author, status: str, text: str = "a comment") -> Comment:
    if status == "held":
        BlockedTerm.objects.get_or_create(term="heldword", action="hold", video=video)
        services.rules._terms_cache.clear()
        comment = services.post_comment(video, author, f"heldword {text}").comment
    else:
        comment = services.post_comment(video, author, text).comment
        if status == "removed":
            services.remove_comment(comment, author)
    comment.refresh_from_db()
    assert comment.status == status
    return comment


def test_a_post_cannot_choose_its_author_video_or_status(world, video, alice, bob):
    other = Video.objects.get(title="Other")
    r = client_for(alice).post(
        f"/api/v1/videos/{video.pk}/comments/",
        {
            "text": "mine",
            "author": {"id": bob.pk, "name": "bob"},
            "author_id": bob.pk,
            "video": other.pk,
            "status": "held",
            "id": 1,
            "cursor": "1-0",
            "created": "2000-01-01T00:00:00Z",
        },
        format="json",
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "unknown_fields")  # refused, not ignored
    assert not Comment.objects.filter(text="mine").exists()
    r = client_for(alice).post(f"/api/v1/videos/{video.pk}/comments/", {"text": "mine"}, format="json")
    comment = Comment.objects.get(pk=r.json()["id"])
    assert (comment.author_id, comment.video_id, comment.status) == (alice.pk, video.pk, "visible")


# -- CSRF: session-authenticated writes need the token; token auth does not -------------


def session_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # the pages set the csrftoken cookie
    return client


def csrf_of(client: Client) -> str:
    return client.cookies["csrftoken"].value


def writes(video, comment):
    """Every session-reachable write of the API, as (method, path, JSON body)."""
    return [
        ("post", f"/api/v1/videos/{video.pk}/comments/", {"text": "csrf check"}),
        ("post", f"/api/v1/comments/{comment.pk}/report/", {"reason": "r"}),
        ("post", f"/api/v1/comments/{comment.pk}/moderate/", {"action": "remove"}),
        ("patch", f"/api/v1/videos/{video.pk}/", {"slow_mode_seconds": 0}),
        ("post", f"/api/v1/videos/{video.pk}/bans/", {"user": "bob", "duration_seconds": 60}),
        ("delete", f"/api/v1/videos/{video.pk}/bans/1/", None),
        ("delete", f"/api/v1/comments/{comment.pk}/", None),
        ("delete", "/api/v1/auth/token/", None),
        ("post", f"/moderation/videos/{video.pk}/reports/resolve/", {"comment": comment.pk}),
    ]


def send(client, method, path, body, **headers):
    data = json.dumps(body) if body is not None else ""
    return getattr(client, method)(path, data, content_type="application/json", **headers)


def test_session_writes_without_the_csrf_token_are_refused_with_a_json_error(db, video, alice, bob, staff):
    comment = comment_in(video, alice, "visible")
    client = session_client(staff)
    for method, path, body in writes(video, comment):
        r = send(client, method, path, body)
        assert r.status_code == 403, (path, r.status_code, r.content[:200])
        assert r["Content-Type"].startswith("application/json"), path
        error = r.json()["error"]
        assert error["code"] in ("permission_denied", "csrf_failed") and "CSRF" in error["message"], (path, error)
    # ...and nothing happened.
    comment.refresh_from_db()
    assert comment.status == "visible"
    assert Comment.objects.count() == 1
    assert not Report.objects.exists() and not Ban.objects.exists()


def test_a_wrong_csrf_token_is_refused_too(db, video, staff):
    client = session_client(staff)
    r = send(client, "post", f"/api/v1/videos/{video.pk}/comments/", {"text": "x"}, HTTP_X_CSRFTOKEN="A" * 64)
    assert r.status_code == 403


def test_session_writes_with_the_csrf_token_work(db, video, alice, bob, staff):
    comment = comment_in(video, alice, "visible")
    client = session_client(staff)
    expected = {
        "comments/": 201,
        "report/": 201,
        "moderate/": 200,
        f"videos/{video.pk}/": 200,
        "bans/": 201,
        "bans/1/": 404,
        f"comments/{comment.pk}/": 204,
        "auth/token/": 204,
        "resolve/": 200,
    }
    for method, path, body in writes(video, comment):
        r = send(client, method, path, body, HTTP_X_CSRFTOKEN=csrf_of(client))
        status = next(s for suffix, s in expected.items() if path.endswith(suffix))
        assert r.status_code == status, (path, r.status_code, r.content[:300])


def test_token_authentication_needs_no_csrf_token_even_with_a_session_cookie(db, video, alice):
    client = session_client(alice)
    token = Token.objects.create(user=alice).key
    r = send(
        client,
        "post",
        f"/api/v1/videos/{video.pk}/comments/",
        {"text": "from the app"},
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    assert r.status_code == 201


def test_the_login_and_signup_forms_need_the_csrf_token(db, alice):
    client = Client(enforce_csrf_checks=True)
    r = client.post("/accounts/login/", {"username": "alice", "password": "alice-password"})
    assert r.status_code == 403
    r = client.post(
        "/accounts/signup/", {"username": "mallory", "password1": "a-long-pass-1", "password2": "a-long-pass-1"}
    )
    assert r.status_code == 403
    assert "_auth_user_id" not in client.session


# -- WebSocket origin ---------------------------------------------------------------------


async def ws_handshake(origin: str | None, host: str = "localhost"):
    from channels.testing import WebsocketCommunicator
    from django.core.asgi import get_asgi_application

    from livecomment.routing import build_application

    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(
        build_application(get_asgi_application()), "/ws/videos/999999/", headers=headers
    )
    connected, _ = await communicator.connect(timeout=10)
    await communicator.disconnect()
    return connected


@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("http://localhost:8000", True),
        ("http://127.0.0.1", True),
        ("https://evil.example", False),
        ("http://localhost.evil.example", False),
        ("null", False),
        (None, True),  # no Origin: not a browser (a native app), let in with token auth only
    ],
)
def test_websockets_from_foreign_origins_are_refused(transactional_db, origin, allowed):
    # Allowed origins get as far as the consumer (which then says the video
    # does not exist); foreign ones are refused at the handshake.
    assert asyncio.run(ws_handshake(origin)) is allowed


# -- streams: moderator-only events, role by role ---------------------------------------------


@pytest.mark.processes
def test_moderator_only_events_reach_only_this_videos_moderators(gateways, world, video, alice, bob):
    gateway = gateways.start()
    tokens = {role: Token.objects.create(user=user).key for role, user in world.items() if user is not None}
    session = Client()
    session.force_login(world["staff"])
    staff_cookie = f"sessionid={session.cookies['sessionid'].value}"
    stream = gateway.url(f"/api/v1/videos/{video.pk}/stream")

    sse = {
        "anonymous": SSEClient(stream),
        "viewer": SSEClient(stream, headers={"Authorization": f"Token {tokens['viewer']}"}),
        "author": SSEClient(f"{stream}?token={tokens['author']}"),
        "other_video_moderator": SSEClient(f"{stream}?token={tokens['other_video_moderator']}"),
        "video_moderator": SSEClient(stream, headers={"Authorization": f"Token {tokens['video_moderator']}"}),
        "staff": SSEClient(stream, headers={"Cookie": staff_cookie}),  # the web page's session
    }
    ws = {
        role: WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/?token={tokens[role]}"))
        for role in ("viewer", "other_video_moderator", "video_moderator")
    }
    ws["anonymous"] = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/"))
    clients = [*sse.values(), *ws.values()]
    for client in sse.values():
        client.wait_open()
        assert client.status == 200
        assert client.wait_until(lambda c: c.retry is not None, 5)

    visible = services.post_comment(video, alice, "plain comment").comment
    BlockedTerm.objects.create(term="secretword", action="hold", video=video)
    services.rules._terms_cache.clear()
    held = services.post_comment(video, alice, "secretword in a held comment").comment
    services.report_comment(visible, bob, "the report's reason")
    marker = services.post_comment(video, bob, "everyone sees this").comment
    for client in clients:  # events arrive in stream order: after the marker, nothing more is coming
        assert client.wait_until(lambda c: marker.pk in c.comment_ids(), 10)

    for role, client in [*((r, c) for r, c in sse.items()), *((r, c) for r, c in ws.items())]:
        kinds = {e.get("event") for e in client.events}
        raw = json.dumps([e.get("data") for e in client.events])
        if role in MODERATORS:
            assert {"comment.held", "report.created"} <= kinds, (role, kinds)
            assert held.pk in [e["data"]["id"] for e in client.of_type("comment.held")]
        else:
            assert not kinds & {"comment.held", "report.created"}, (role, kinds)
            assert "secretword" not in raw and "the report's reason" not in raw, role
            assert held.pk not in client.comment_ids()

    # Joining later, or resuming from the very start, gives non-moderators no more.
    for role in ("viewer", "other_video_moderator"):
        late = SSEClient(f"{stream}?token={tokens[role]}", last_event_id="0-0").wait_open()
        assert late.wait_until(lambda c: marker.pk in c.comment_ids(), 10)
        assert not {e.get("event") for e in late.events} & {"comment.held", "report.created"}
        assert "secretword" not in json.dumps([e.get("data") for e in late.events])
        clients.append(late)

    # A revoked token stops working for streams at once.
    r = httpx.delete(gateway.url("/api/v1/auth/token/"), headers={"Authorization": f"Token {tokens['viewer']}"})
    assert r.status_code == 204
    refused = SSEClient(f"{stream}?token={tokens['viewer']}").wait_open()
    refused.thread.join(5)  # the body of a refusal is read after "open"
    assert refused.status == 401 and json.loads(refused.body)["error"]["code"] == "authentication_failed"
    refused_ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/?token={tokens['viewer']}"))
    assert refused_ws.wait_until(lambda c: c.closed, 5)
    assert refused_ws.ws.close_code == 4401
    for client in [*clients, refused, refused_ws]:
        client.close()


# -- passwords and production settings ----------------------------------------------------------


PRODUCTION_PROBE = r"""
import json, django
django.setup()
from django.core.management import call_command
call_command("check", deploy=True, fail_level="WARNING")
from django.conf import settings
from django.contrib.auth.hashers import get_hasher, make_password
from django.test import Client
hasher = get_hasher()
plain = Client().get("/nowhere", HTTP_HOST="live.example.com")
secure = Client().get("/nowhere", HTTP_HOST="live.example.com", HTTP_X_FORWARDED_PROTO="https")
health = Client().get("/healthz", HTTP_HOST="live.example.com")
print("PROBE " + json.dumps({
    "hasher": hasher.algorithm, "iterations": hasher.iterations, "hash": make_password("pw").split("$")[0],
    "session_secure": settings.SESSION_COOKIE_SECURE, "csrf_secure": settings.CSRF_COOKIE_SECURE,
    "session_httponly": settings.SESSION_COOKIE_HTTPONLY, "samesite": settings.SESSION_COOKIE_SAMESITE,
    "plain_status": plain.status_code, "plain_location": plain.get("Location"),
    "hsts": secure.get("Strict-Transport-Security"), "referrer": secure.get("Referrer-Policy"),
    "nosniff": secure.get("X-Content-Type-Options"), "frame": secure.get("X-Frame-Options"),
    "health_status": health.status_code,
}))
"""


def production_env(tmp_path, **extra) -> dict:
    import os

    from django.conf import settings

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_", "SESSION_", "CSRF_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "livecomment.settings",
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "live.example.com",
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
            "REDIS_URL": settings.REDIS_URL,
            "STATIC_ROOT": str(tmp_path / "static"),
            "LOG_LEVEL": "ERROR",
        }
    )
    env.pop("BEHIND_TLS_PROXY", None)
    env.update(extra)
    return env


def test_production_settings_pass_check_deploy_and_hash_with_pbkdf2(tmp_path):
    """DEBUG=0 behind a TLS proxy: `check --deploy` has nothing to say; secure
    cookies, HSTS, HTTPS redirect (but not for the load balancer's health
    check), and passwords hashed with Django's default, PBKDF2. (The tests
    themselves hash with MD5 for speed: tests/conftest.py.)"""
    env = production_env(tmp_path, BEHIND_TLS_PROXY="1")
    out = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "System check identified no issues" in out.stdout, out.stdout
    probe = json.loads(out.stdout.split("PROBE ", 1)[1])
    assert probe["hasher"] == "pbkdf2_sha256" and probe["hash"] == "pbkdf2_sha256"
    assert probe["iterations"] >= 1_000_000
    assert probe["session_secure"] and probe["csrf_secure"] and probe["session_httponly"]
    assert probe["samesite"] == "Lax"
    assert probe["plain_status"] == 301 and probe["plain_location"].startswith("https://live.example.com/")
    assert probe["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert probe["referrer"] == "same-origin" and probe["nosniff"] == "nosniff" and probe["frame"] == "DENY"
    assert probe["health_status"] != 301


def test_check_deploy_still_warns_when_served_over_plain_http(tmp_path):
    """Without BEHIND_TLS_PROXY nothing is silenced: the check says HTTPS is off."""
    env = production_env(tmp_path)
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "security.W004" in out.stderr + out.stdout and "security.W008" in out.stderr + out.stdout
    assert "W009" not in out.stderr + out.stdout  # the SECRET_KEY is fine


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = production_env(tmp_path)
    env.pop("SECRET_KEY")
    out = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "SECRET_KEY must be set" in out.stderr
