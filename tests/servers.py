"""Real gateway processes for tests: Daphne (or uvicorn) on free loopback ports.

They share the test run's database (use the `transactional_db` fixture so
what a test writes is committed and visible to them) and its Redis.

    def test_something(gateways, video):
        a, b = gateways.start(), gateways.start()
        httpx.get(a.url("/healthz"))
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """A URL for the database this test run uses (the test database)."""
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or "postgres"
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    host = conf.get("HOST") or "127.0.0.1"
    port = conf.get("PORT") or 5432
    return f"postgresql://{user}{password}@{host}:{port}/{conf['NAME']}"


@dataclass
class Gateway:
    port: int
    process: subprocess.Popen
    log_path: Path
    server: str = "daphne"
    env: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup."""
        if self.alive():
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 10) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Gateways:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.started: list[Gateway] = []

    def env(self, **extra) -> dict:
        env = os.environ.copy()
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "livecomment.settings",
                "VAR_DIR": str(settings.VAR_DIR),
                "REDIS_URL": settings.REDIS_URL,
                "DATABASE_URL": database_url(),
                "SECRET_KEY": settings.SECRET_KEY,
                "DEBUG": "1",
                "THROTTLE_POST_RATE": "100000/min",
                "THROTTLE_ANON_RATE": "100000/min",
                "PYTHONUNBUFFERED": "1",
                "API_THREAD_POOL": "1",
            }
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, server: str = "daphne", port: int | None = None, wait: bool = True, **env) -> Gateway:
        port = port or free_port()
        app = "livecomment.asgi:application"
        if server == "daphne":
            # As `manage.py serve` runs Daphne (its lighter receive queue, livecomment/server/daphne_worker.py).
            cmd = [sys.executable, "-m", "livecomment.server.daphne_worker", "-b", "127.0.0.1", "-p", str(port), app]
        else:
            cmd = [
                sys.executable,
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                app,
            ]
        log_path = self.tmp_path / f"gateway-{port}.log"
        log = open(log_path, "ab")
        process = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        gateway = Gateway(port, process, log_path, server, env)
        self.started.append(gateway)
        if wait:
            self.wait_ready(gateway)
        return gateway

    def restart(self, gateway: Gateway) -> Gateway:
        """Start a new process on the same port (after kill() or stop())."""
        gateway.stop()
        fresh = self.start(gateway.server, port=gateway.port, **gateway.env)
        return fresh

    @staticmethod
    def wait_ready(gateway: Gateway, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not gateway.alive():
                raise RuntimeError(f"gateway on {gateway.port} exited:\n{gateway.log()}")
            try:
                if httpx.get(gateway.url("/healthz"), timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway on {gateway.port} not ready:\n{gateway.log()}")

    def stop_all(self) -> None:
        for gateway in self.started:
            gateway.stop()


@pytest.fixture
def gateways(transactional_db, tmp_path):
    pool = Gateways(tmp_path)
    yield pool
    pool.stop_all()
