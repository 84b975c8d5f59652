"""`manage.py serve --workers N`: N gateway processes share one port and one Redis."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rest_framework.authtoken.models import Token

from tests.base import alice, video
from tests.realtime_clients import Poster, SSEClient
from tests.servers import ROOT, Gateways, free_port


def test_it_runs_two_workers_on_one_port(transactional_db, tmp_path, video, alice):
    port = free_port()
    env = Gateways(tmp_path).env()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        # Keep-alive off: each request may land on either worker.
        channels = set()
        clients = []
        for _ in range(40):
            clients.append(SSEClient(f"{base}/api/v1/videos/{video.pk}/stream").wait_open())
            with httpx.Client() as c:
                channel = c.get(base + "/gateway/stats", headers={"Connection": "close"}).json()["channel"]
            if channel is not None:  # None: a worker whose hub has no stream yet
                channels.add(channel)
            if len(channels) == 2 and len(clients) >= 6:
                break
        assert len(channels) == 2, "both workers should answer on the shared port"
        poster = Poster(base, Token.objects.create(user=alice).key)
        posted = [poster.post(video.pk, f"hi {i}") for i in range(3)]
        for client in clients:
            assert client.wait_for_comments(3)
            assert client.comment_ids() == [c["id"] for c in posted]
            client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert proc.returncode == 0, Path(tmp_path / "serve.log").read_text()
    output = (tmp_path / "serve.log").read_text()
    assert "2 daphne worker(s)" in output
    # No Daphne access log ("127.0.0.1:5555 - - [25/Nov/2026:...] "GET ..."):
    # the JSON request lines already say it.
    assert not re.search(r"^\S+:\d+ - - \[", output, re.MULTILINE), output[-2000:]
    assert os.path.exists(ROOT / "manage.py")


def test_it_refuses_to_start_with_debug_off_and_no_collected_static_files(tmp_path):
    """DEBUG=0 names static files from collectstatic's manifest: without it
    every page would answer 500. `serve` and a worker loading the ASGI app
    both stop at once and say what to run."""
    env = Gateways(tmp_path).env(DEBUG="0", STATIC_ROOT=str(tmp_path / "static"))
    serve = subprocess.run(
        [sys.executable, "manage.py", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode != 0
    assert "collectstatic" in serve.stderr and "Static files are not collected" in serve.stderr, serve.stderr[-2000:]
    assert "is running" not in serve.stdout
    worker = subprocess.run(
        [sys.executable, "-c", "import livecomment.asgi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert worker.returncode != 0
    assert "collectstatic" in worker.stderr, worker.stderr[-2000:]
