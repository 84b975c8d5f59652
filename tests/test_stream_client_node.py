"""The browser's stream client and API module (static/js/livecomment-*.js)
under Node 20 against a real gateway: tests/node/stream_client_test.mjs cuts
the connection, posts while every reconnect is refused, and checks that
exactly the missed comments arrive, once each, in order, over SSE (a minimal
fetch EventSource, and the `eventsource` package), the WebSocket, and the
WebSocket after SSE was refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from comments.models import Comment
from tests.base import alice, video

pytestmark = [pytest.mark.processes]

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"
SCRIPT = NODE_DIR / "stream_client_test.mjs"


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed (Node 20.10+ runs tests/node/)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = (int(part) for part in version.strip().lstrip("v").split(".")[:2])
    if (major, minor) < (20, 10):
        pytest.skip(f"node {version.strip()} has no WebSocket (Node 20.10+ runs tests/node/)")
    return path


def eventsource_package() -> None:
    """The pinned `eventsource` package of tests/node (`npm ci` on first use, as CI does)."""
    if not (NODE_DIR / "node_modules" / "eventsource").is_dir():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed")
        installed = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, capture_output=True, timeout=300
        )
        assert installed.returncode == 0, installed.stderr


@pytest.mark.parametrize("mode", ["sse", "eventsource", "ws", "fallback"])
def test_it_resumes_under_node_with_exactly_the_missed_comments(mode, gateways, video, alice):
    binary = node()
    if mode == "eventsource":
        eventsource_package()
    gateway = gateways.start()
    env = os.environ | {
        "LC_BASE": gateway.base,
        "LC_VIDEO": str(video.pk),
        "LC_TOKEN": Token.objects.create(user=alice).key,
        "LC_MODE": mode,
    }
    run = subprocess.run(
        [binary, "--experimental-websocket", "--no-warnings", str(SCRIPT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{gateway.log()}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    posted = list(Comment.objects.filter(video=video).order_by("position").values_list("pk", flat=True))
    assert len(posted) == 7
    assert result["comments"] == posted
    assert result["transport"] == ("sse" if mode in ("sse", "eventsource") else "ws")
    # It resumed from its last id, not from the backlog of recent comments.
    assert "resume=True" in gateway.log()
