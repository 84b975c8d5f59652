"""The stream client (static/js/livecomment-stream.js) backs off while the
gateway keeps refusing it, under Node against a real gateway.

A WebSocket refusal is an accepted socket, an `error` frame, then a close
(4429, 4503): the socket did open, but a refused connection is no connection
that worked, so the backoff must keep growing (0.5 s doubling to 5 s) rather
than start again at 0.5 s after each refusal -- every viewer of a full or
shutting-down gateway would otherwise be back twice a second, for as long as
the refusals last.
"""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest
from websockets.sync.client import connect

from tests.base import video  # fixtures
from tests.test_stream_client_node import NODE_DIR, ROOT, eventsource_package, node

pytestmark = [pytest.mark.processes]

SCRIPT = NODE_DIR / "reconnect_backoff_test.mjs"
WATCH_MS = 4000
# Backoff 0.5, 1, 2, 4 s (each at least 75 %): within 4 s the first
# connection and at most three retries (0.375 + 0.75 + 1.5 s in); refusals
# answered from 0.5 s each time would be eight or more.
MOST_SOCKETS = 4
IP = "203.0.113.7"  # loopback has no limit; this address has one stream


@pytest.mark.parametrize("mode", ["ws", "fallback"])
def test_it_backs_off_while_every_connection_is_refused(mode, gateways, video):
    binary = node()
    eventsource_package()  # and ws: tests/node's pinned packages
    gateway = gateways.start(MAX_STREAMS_PER_IP="1", NUM_PROXIES="1")
    socket = gateway.ws_url(f"/ws/videos/{video.pk}/")
    with connect(socket, additional_headers={"X-Forwarded-For": IP}, open_timeout=10) as holder:
        holder.recv(timeout=10)  # in: the one stream this address may have
        env = os.environ | {
            "LC_BASE": gateway.base,
            "LC_VIDEO": str(video.pk),
            "LC_IP": IP,
            "LC_MODE": mode,
            "LC_WATCH_MS": str(WATCH_MS),
        }
        run = subprocess.run(
            [binary, "--no-warnings", str(SCRIPT)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{gateway.log()}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["closeCodes"] and set(result["closeCodes"]) == {4429}, result
    assert 2 <= result["sockets"] <= MOST_SOCKETS, result
    if mode == "fallback":  # SSE first, the WebSocket at once, then the two take turns
        assert result["sockets"] <= result["streams"] <= result["sockets"] + 1, result
    else:
        assert result["streams"] == 0, result
    assert "live" not in result["states"], result


def test_it_goes_back_to_sse_when_the_websocket_it_fell_back_to_is_refused_too(gateways, video):
    """A page of another site may use SSE only (the WebSocket refuses its
    Origin). When its first SSE connection is refused (a full gateway, one
    starting up) the client falls back to the WebSocket; refused there as
    well, it must try SSE again rather than knock on the WebSocket for ever."""
    binary = node()
    eventsource_package()
    gateway = gateways.start(MAX_STREAMS_PER_IP="1", NUM_PROXIES="1")
    holder = httpx.stream(
        "GET", gateway.url(f"/api/v1/videos/{video.pk}/stream"), headers={"X-Forwarded-For": IP}, timeout=10
    )
    response = holder.__enter__()
    assert response.status_code == 200
    env = os.environ | {
        "LC_BASE": gateway.base,
        "LC_VIDEO": str(video.pk),
        "LC_IP": IP,
        "LC_MODE": "foreign",
        "LC_WATCH_MS": "15000",
    }
    process = subprocess.Popen(
        [binary, "--no-warnings", str(SCRIPT)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []  # the client's console.info, then the script's "refused"
        while not lines or lines[-1] not in ("refused", ""):
            lines.append(process.stdout.readline().strip())
        holder.__exit__(None, None, None)  # the address's one stream is free again
        assert lines[-1] == "refused", lines
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, f"{out}\n{err}\n{gateway.log()}"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["states"][-1] == "live" and result["transport"] == "sse", result
    assert result["streams"] >= 2, result
