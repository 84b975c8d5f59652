"""Hostile input on the routes taken before Django -- the SSE stream, the
WebSocket handshake and its frames, /metrics, /gateway/stats -- and on the
servers themselves, against real uvicorn and Daphne processes.

The routes come from the ASGI routing table (livecomment/routing.py
`asgi_routes`), plus one Django route and the posting fast path. The answer is
a 4xx (under /api/ with {"error": {"code", "message"}}) or, where the server's
own limits answer first (a 64 KiB header, bytes no HTTP parser takes), a 4xx
from the server or a closed connection -- never a 5xx.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import pytest
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from livecomment.routing import asgi_routes
from tests.base import alice, video  # fixtures
from tests.test_hostile_input import ABSURD_IDS, PARAM, concrete

SERVERS = ["uvicorn", "daphne"]
HUGE = 64 * 1024


def patterns(routes) -> list[str]:
    return [str(route.pattern) for route in routes]


HTTP_ROUTES, WS_ROUTES = (patterns(routes) for routes in asgi_routes())


def raw(gateway, head: bytes, timeout: float = 10) -> tuple[int | None, bytes]:
    """(status, body) of a raw HTTP/1.1 request sent with `Connection: close`;
    (None, b"") when the server closed the connection without an answer."""
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
            sock.sendall(head)
            while chunk := sock.recv(65536):
                data += chunk
    except (ConnectionResetError, BrokenPipeError, TimeoutError):
        pass  # reset: no answer; timeout: a stream that opened (its status is enough)
    if not data.startswith(b"HTTP/1."):
        return None, b""
    head_part, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head_part.lower():
        body = dechunk(body)
    return int(data.split(b" ", 2)[1]), body


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2 :]
    return out


def get(path: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def assert_refused(status: int | None, body: bytes, path: bytes, by_server: bool = False) -> None:
    """A 4xx; with JSON under /api/ unless the server's own parser may have
    answered first (`by_server`: then a plain 400 or a closed connection will do)."""
    if status is None:
        assert by_server, f"{path[:100]!r}: closed without an answer"
        return
    assert 400 <= status < 500, (path[:100], status, body[:300])
    if by_server and status == 400 and not body.startswith(b"{"):
        return
    if path.startswith(b"/api/"):
        error = json.loads(body)["error"]
        assert error["code"] and error["message"], path[:100]


def handshake(gateway, path: str, **kwargs):
    """A native (no Origin) WebSocket: its first frame and close code."""
    from websockets.exceptions import ConnectionClosed

    with connect(gateway.ws_url(path), open_timeout=10, **kwargs) as ws:
        try:
            frame = json.loads(ws.recv(timeout=10))
        except ConnectionClosed:
            # Daphne can close before the client read the error frame; the close code still says why.
            return {"event": "error", "error": {"code": "not_found"}} if ws.close_code == 4404 else {}, ws.close_code
        try:
            ws.recv(timeout=10)
        except Exception:  # noqa: BLE001 - the close we wait for
            pass
        return frame, ws.close_code


def test_it_reads_the_asgi_routing_table():
    assert "api/v1/videos/<id:video_id>/stream" in HTTP_ROUTES
    assert "ws/videos/<id:video_id>/" in WS_ROUTES
    assert not [r for r in HTTP_ROUTES + WS_ROUTES if "(?P<video_id>" in r], "ids go through <id:>"


@pytest.mark.parametrize("server", SERVERS)
def test_it_answers_absurd_ids_on_the_stream_and_the_socket_with_404(gateways, video, server):
    gateway = gateways.start(server)
    id_routes = [r for r in HTTP_ROUTES if "<id:" in r]
    assert id_routes
    for route in id_routes:
        for value in ABSURD_IDS:
            path = concrete(route, default=quote(value, safe="%")).encode()
            status, body = raw(gateway, get(path))
            assert status == 404, (path[:80], status, body[:200])
            assert json.loads(body)["error"]["code"] == "not_found"
    # Absurd values in the stream's own parameters.
    stream = concrete(id_routes[0], default=str(video.pk))
    huge = "9" * 5000
    for query, expected in [(f"last_event_id={huge}-0", 400), (f"token={huge}", 401), ("last_event_id=-1-0", 400)]:
        status, body = raw(gateway, get(f"{stream}?{query}".encode()))
        assert status == expected, (query[:40], status, body[:200])
        assert json.loads(body)["error"]["code"]
    for route in [r for r in WS_ROUTES if PARAM.search(r)]:
        for value in ["9" * 5000, str(2**63), "-1", "1e3", "%FF"]:
            frame, code = handshake(gateway, concrete(route, default=quote(value, safe="%")))
            assert frame["event"] == "error" and frame["error"]["code"] == "not_found", (route, value)
            assert code == 4404
    # And a route the table does not have.
    frame, code = handshake(gateway, "/ws/nothing/")
    assert frame["error"]["code"] == "not_found" and code == 4404


@pytest.mark.parametrize("server", SERVERS)
def test_it_refuses_huge_headers(gateways, video, server):
    gateway = gateways.start(server)
    paths = [concrete(r, default=str(video.pk)).encode() for r in HTTP_ROUTES]
    paths += [f"/api/v1/videos/{video.pk}/comments/".encode(), b"/healthz"]
    for path in paths:
        for name in [b"Authorization: Token ", b"Last-Event-ID: 1-", b"Cookie: sessionid=", b"X-Forwarded-For: 1"]:
            status, body = raw(gateway, get(path, name + b"0" * HUGE))
            assert_refused(status, body, path, by_server=True)
    # The WebSocket handshake: refused by the server or the app, never a 5xx.
    for route in WS_ROUTES:
        path = concrete(route, default=str(video.pk)).encode()
        lines = [
            b"GET " + path + b" HTTP/1.1",
            b"Host: 127.0.0.1",
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Version: 13",
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            b"X-Big: " + b"x" * HUGE,
        ]
        status, _ = raw(gateway, b"\r\n".join(lines) + b"\r\n\r\n")
        assert status is None or 400 <= status < 500, (path, status)


@pytest.mark.parametrize("server", SERVERS)
def test_it_refuses_invalid_utf8_in_path_query_and_headers(gateways, video, alice, server):
    gateway = gateways.start(server)
    stream = f"/api/v1/videos/{video.pk}/stream".encode()
    key = Token.objects.create(user=alice).key.encode()
    cases = [
        (b"/api/v1/videos/\xff/stream", ()),
        (b"/api/v1/videos/%FF%FE/stream", ()),
        (stream + b"?last_event_id=%FF", ()),
        (stream + b"?token=%FF%FE", ()),
        (stream + b"?last_event_id=\xff", ()),
        (stream, (b"Last-Event-ID: \xff\xfe",)),
        (stream, (b"Authorization: Token \xff" + key[1:],)),
        (b"/api/v1/videos/\xff/", ()),
        (b"/gateway/stats?\xff", ()),
        (b"/metrics", (b"X-Forwarded-For: \xff",)),
    ]
    for path, headers in cases:
        status, body = raw(gateway, get(path, *headers))
        # Raw bytes over 0x7F in the request line: HTTP parsers may refuse them first.
        raw_line = any(byte > 0x7F for byte in path)
        assert_refused(status, body, path, by_server=raw_line)
    # The posting fast path: a token client's body that is not UTF-8, or nested too deeply.
    post = f"/api/v1/videos/{video.pk}/comments/".encode()
    for body in [b'{"text": "\xff"}', b"[" * 10_000, b'{"text": ' + b"[" * 100 + b"]" * 100 + b"}"]:
        head = b"\r\n".join(
            [
                b"POST " + post + b" HTTP/1.1",
                b"Host: 127.0.0.1",
                b"Authorization: Token " + key,
                b"Content-Type: application/json",
                b"Connection: close",
                b"Content-Length: " + str(len(body)).encode(),
            ]
        )
        status, answer = raw(gateway, head + b"\r\n\r\n" + body)
        assert status == 400, (body[:40], status, answer[:200])
        assert json.loads(answer)["error"]["code"] in {"invalid_json", "invalid_text"}


@pytest.mark.parametrize("server", SERVERS)
def test_it_answers_hostile_websocket_frames_and_keeps_the_socket(gateways, video, alice, server):
    gateway = gateways.start(server)
    key = Token.objects.create(user=alice).key
    with connect(gateway.ws_url(f"/ws/videos/{video.pk}/?token={key}"), open_timeout=10) as ws:
        for frame in ["[" * 10_000, '{"action": "post", "text": ' + "[" * 100 + "]" * 100 + "}", "{"]:
            ws.send(frame)
            while True:
                reply = json.loads(ws.recv(timeout=10))
                if reply["event"] == "error":
                    break
            assert reply["error"]["code"] == "invalid_json", frame[:30]
        ws.send(b"\xff\xfe")  # a binary frame
        while (reply := json.loads(ws.recv(timeout=10)))["event"] != "error":
            pass
        assert reply["error"]["code"] == "invalid_message"
        # Still open, still posting.
        ws.send(json.dumps({"action": "post", "text": "still here", "ref": "ok"}))
        while (reply := json.loads(ws.recv(timeout=10))).get("ref") != "ok":
            pass
        assert reply["event"] == "ack"


@pytest.mark.parametrize("server", SERVERS)
def test_it_routes_api_paths_without_the_slash_and_answers_json_under_debug(gateways, video, alice, server):
    # The gateways run with DEBUG=1: Django's own 404 page would be HTML.
    gateway = gateways.start(server)
    key = Token.objects.create(user=alice).key.encode()
    for path in [f"/api/v1/videos/{video.pk}/comments".encode(), f"/api/v1/videos/{video.pk}/comments/".encode()]:
        body = b'{"text": "to ' + path + b'"}'
        head = b"\r\n".join(
            [
                b"POST " + path + b" HTTP/1.1",
                b"Host: 127.0.0.1",
                b"Authorization: Token " + key,
                b"Content-Type: application/json",
                b"Connection: close",
                b"Content-Length: " + str(len(body)).encode(),
            ]
        )
        status, answer = raw(gateway, head + b"\r\n\r\n" + body)
        assert status == 201, (path, status, answer[:200])
    for path in [b"/api/v1/nothing", b"/api/v1/videos/1/nothing/", b"/api/"]:
        status, answer = raw(gateway, get(path))
        assert status == 404 and json.loads(answer)["error"]["code"] == "not_found", (path, status, answer[:200])
