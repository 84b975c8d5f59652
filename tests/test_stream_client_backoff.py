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
    assert result["streams"] == (1 if mode == "fallback" else 0), result
    assert "live" not in result["states"], result
