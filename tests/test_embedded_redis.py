"""The embedded Redis of `make run`: started by `manage.py serve` when REDIS_URL
is unset, shared by every process of the project, and never left behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from livecomment.server.embedded_redis import socket_path
from tests.servers import ROOT, free_port

pytestmark = pytest.mark.processes


def gone(pid: int) -> bool:
    """No such process, or a zombie waiting for a parent that no longer cares."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found


def redis_servers_on(sock: Path) -> list[int]:
    """Pids of live redis-server processes serving this socket's directory
    (redis-server rewrites its command line, but runs in its --dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            exe = os.readlink(proc / "exe")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if exe.endswith("redis-server") and Path(cwd) == sock.parent and not gone(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def project_env(var_dir: str) -> dict:
    env = os.environ.copy()
    for name in ("REDIS_URL", "DATABASE_URL"):
        env.pop(name, None)
    env.update(
        {
            "VAR_DIR": var_dir,
            "DJANGO_SETTINGS_MODULE": "livecomment.settings",
            "DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def var_dir():
    # Short: the unix socket's path must fit in 108 bytes.
    path = tempfile.mkdtemp(prefix="lc-serve-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Serve:
    """`manage.py serve`, as `make run` starts it, in a session of its own."""

    def __init__(self, var_dir: str):
        self.var_dir = var_dir
        self.port = free_port()
        self.log_path = Path(var_dir) / "serve.log"
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=project_env(var_dir),
            stdin=subprocess.DEVNULL,
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pids_seen: set[int] = set()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> None:
        def healthy():
            assert self.process.poll() is None, self.log()
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout, f"/healthz of manage.py serve\n{self.log()}")
        self.pids_seen = children_of(self.process.pid)

    def redis_pid(self) -> int:
        return int((Path(self.var_dir) / "redis" / "redis.pid").read_text())

    def cleanup(self) -> None:
        """Kill whatever this test started and is still running."""
        for pid in [self.process.pid, *self.pids_seen]:
            if not gone(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.process.poll() is None:
            self.process.wait(5)


@pytest.fixture
def serve(var_dir):
    started: list[Serve] = []

    def start() -> Serve:
        s = Serve(var_dir)
        started.append(s)
        s.wait_ready()
        return s

    yield start
    for s in started:
        s.cleanup()


def test_ctrl_c_stops_the_server_and_its_redis(serve, var_dir):
    """Ctrl-C in the terminal: SIGINT to the whole foreground process group."""
    s = serve()
    redis_pid = s.redis_pid()
    assert redis_pid in s.pids_seen  # serve started it and owns it
    assert socket_path(var_dir).exists()
    assert "Embedded Redis" in s.log()

    os.killpg(s.process.pid, signal.SIGINT)
    assert s.process.wait(20) == 0, s.log()
    wait_until(lambda: gone(redis_pid), 10, "redis-server to exit")
    for pid in s.pids_seen:
        wait_until(lambda pid=pid: gone(pid), 10, f"child {pid} to exit")
    assert redis_servers_on(socket_path(var_dir)) == []
    assert "Stopped." in s.log()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_server_alone_stops_its_redis(serve, var_dir, signum):
    """kill <pid> or a process manager signalling only the main process."""
    s = serve()
    redis_pid = s.redis_pid()
    s.process.send_signal(signum)
    assert s.process.wait(20) == 0, s.log()
    wait_until(lambda: gone(redis_pid), 10, "redis-server to exit")
    for pid in s.pids_seen:
        wait_until(lambda pid=pid: gone(pid), 10, f"child {pid} to exit")


def test_sigkill_of_the_server_leaves_nothing_behind(serve, var_dir):
    """No chance to clean up: the kernel's parent-death signal stops
    redis-server and the workers. The next start then reuses the directory
    (and its stale socket)."""
    s = serve()
    redis_pid = s.redis_pid()
    s.process.kill()
    s.process.wait(10)
    wait_until(lambda: gone(redis_pid), 10, "redis-server to exit after SIGKILL of its owner")
    assert redis_servers_on(socket_path(var_dir)) == []
    # Nor gateway workers still holding the port.
    for pid in s.pids_seen:
        wait_until(lambda pid=pid: gone(pid), 10, f"worker {pid} to exit after SIGKILL of serve")

    again = serve()
    assert again.redis_pid() != redis_pid
    assert redis_servers_on(socket_path(var_dir)) == [again.redis_pid()]
    os.killpg(again.process.pid, signal.SIGINT)
    assert again.process.wait(20) == 0, again.log()


CALLER = textwrap.dedent(
    """
    import sys
    from livecomment.server.embedded_redis import ensure_running, owned_pid
    started = ensure_running(sys.argv[1])
    print(started, owned_pid(), flush=True)
    sys.stdin.readline()  # hold on until the test says so
    """
)


def test_two_callers_share_one_server(var_dir):
    sock = socket_path(var_dir)
    callers = [
        subprocess.Popen(
            [sys.executable, "-c", CALLER, var_dir],
            cwd=ROOT,
            env=project_env(var_dir),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        answers = [c.stdout.readline().split() for c in callers]
        assert sorted(a[0] for a in answers) == ["False", "True"], answers
        owner, other = (callers[0], callers[1]) if answers[0][0] == "True" else (callers[1], callers[0])
        owned = int(next(a[1] for a in answers if a[0] == "True"))
        assert redis_servers_on(sock) == [owned]
        assert int((Path(var_dir) / "redis" / "redis.pid").read_text()) == owned

        # The one that did not start it leaves it running when it exits ...
        other.stdin.close()
        assert other.wait(10) == 0
        import redis

        assert redis.Redis(unix_socket_path=str(sock)).ping()
        # ... the owner stops it.
        owner.stdin.close()
        assert owner.wait(10) == 0
        wait_until(lambda: gone(owned), 10, "redis-server to exit with its owner")
        assert redis_servers_on(sock) == []
    finally:
        for c in callers:
            if c.poll() is None:
                c.kill()
                c.wait()
        for pid in redis_servers_on(sock):
            os.kill(pid, signal.SIGKILL)
