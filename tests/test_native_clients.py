"""Native WebSocket clients: no `Origin` header (OkHttp, URLSession, Python
`websockets`, Node `ws` by default) is let in and signs in by token only;
a browser's foreign `Origin` is refused at the handshake.

Against real gateway processes, under both servers: the Origin check is the
ASGI routing's (livecomment/routing.py), the cookie rule dispatcher/auth.py's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.base import alice, video  # fixtures

SERVERS = ["uvicorn", "daphne"]
NODE_DIR = Path(__file__).resolve().parent / "node"


def frames_until(ws, predicate, limit: int = 50) -> dict:
    """The first frame the predicate accepts (skipping backlog, viewers, pings)."""
    for _ in range(limit):
        frame = json.loads(ws.recv(timeout=10))
        if predicate(frame):
            return frame
    raise AssertionError("no such frame")


def post(ws, text: str, ref: str) -> dict:
    ws.send(json.dumps({"action": "post", "text": text, "ref": ref}))
    return frames_until(ws, lambda f: f.get("ref") == ref)


def native(url: str, **kwargs):
    ws = connect(url, open_timeout=10, **kwargs)
    # What makes it native: the handshake carried no Origin.
    assert "Origin" not in ws.request.headers
    return ws


@pytest.mark.parametrize("server", SERVERS)
def test_it_lets_native_clients_read_and_post_with_a_token_in_the_query_or_the_header(gateways, video, alice, server):
    gateway = gateways.start(server)
    url = gateway.ws_url(f"/ws/videos/{video.pk}/")
    key = Token.objects.create(user=alice).key
    with native(url) as reader, native(f"{url}?token={key}") as by_query:
        with native(url, additional_headers={"Authorization": f"Token {key}"}) as by_header:
            assert post(by_query, "from the query", "q")["event"] == "ack"
            assert post(by_header, "from the header", "h")["event"] == "ack"
            # The anonymous native reader gets both, live.
            got = [frames_until(reader, lambda f: f["event"] == "comment")["data"]["text"] for _ in range(2)]
            assert got == ["from the query", "from the header"]
            refused = post(reader, "anonymous", "a")
            assert refused["event"] == "error" and refused["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("server", SERVERS)
def test_it_ignores_session_cookies_without_an_origin(gateways, video, alice, server):
    gateway = gateways.start(server)
    browser = Client()
    browser.force_login(alice)
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    url = gateway.ws_url(f"/ws/videos/{video.pk}/")
    with native(url, additional_headers={"Cookie": cookie}) as ws:
        refused = post(ws, "riding a cookie", "c")
        assert refused["event"] == "error" and refused["error"]["code"] == "not_authenticated"
    # The same cookie from the site's own page (its Origin) signs in, as before.
    with connect(url, origin=gateway.base, additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
        assert post(ws, "from the page", "p")["event"] == "ack"


@pytest.mark.parametrize("server", SERVERS)
def test_it_refuses_a_foreign_origin_at_the_handshake(gateways, video, alice, server):
    gateway = gateways.start(server)
    key = Token.objects.create(user=alice).key
    url = gateway.ws_url(f"/ws/videos/{video.pk}/?token={key}")
    for origin in ["http://evil.example", "null", "http://127.0.0.1.evil.example:80"]:
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers={"Origin": origin}, open_timeout=10)
        assert refused.value.response.status_code == 403, origin


@pytest.mark.parametrize("server", SERVERS)
def test_it_closes_a_native_client_with_a_bad_token_4401(gateways, video, server):
    gateway = gateways.start(server)
    with native(gateway.ws_url(f"/ws/videos/{video.pk}/?token=nope")) as ws:
        frame = json.loads(ws.recv(timeout=10))
        assert frame["event"] == "error" and frame["error"]["code"] == "authentication_failed"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 4401


def node_ws_ready() -> bool:
    """Node and the pinned `ws` package (tests/node, installed on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return False
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        installed = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, capture_output=True, timeout=300
        )
        if installed.returncode != 0:
            return False
    return True


@pytest.mark.parametrize("server", SERVERS)
def test_it_serves_node_ws_clients(gateways, video, alice, server):
    if not node_ws_ready():
        pytest.skip("node, npm or the ws package is not available")
    gateway = gateways.start(server)
    key = Token.objects.create(user=alice).key
    result = subprocess.run(
        ["node", "native_client.js", gateway.ws_url(f"/ws/videos/{video.pk}/?token={key}"), "from node"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["origin_sent"] is False
    assert report["ack"]["event"] == "ack" and report["ack"]["data"]["text"] == "from node"
