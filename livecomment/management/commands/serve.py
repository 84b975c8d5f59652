"""Run the server: embedded Redis (if no REDIS_URL) plus N gateway processes.

    python manage.py serve --port 8000 --workers 2 --server uvicorn

The parent binds the listening socket once and hands it to every worker
(`--fd`), so N Daphne or uvicorn processes share one port and the kernel
spreads connections over them; no sticky sessions are needed because any
gateway can serve any video. Ctrl-C or SIGTERM stops the workers, then the
embedded Redis; nothing is left running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from livecomment.lib.checks import require_start_up_checks
from livecomment.server import embedded_redis


class Command(BaseCommand):
    help = "Start the embedded Redis (when REDIS_URL is unset) and N Daphne/uvicorn gateway processes."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=1)
        parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")

    def handle(self, *args, host, port, workers, server, **options):
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        try:
            require_start_up_checks()  # before anything starts: the workers would refuse too
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.children: list[subprocess.Popen] = []
        self.stopping = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

        env = os.environ.copy()
        if settings.EMBEDDED_REDIS:
            embedded_redis.ensure_running(settings.VAR_DIR)
            pid = embedded_redis.owned_pid()
            self.stdout.write(f"Embedded Redis on {settings.REDIS_URL}" + (f" (pid {pid})" if pid else " (shared)"))
        env["REDIS_URL"] = settings.REDIS_URL  # workers share it, never own it

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc
        listener.listen(2048)
        listener.set_inheritable(True)
        fd = listener.fileno()

        for _ in range(workers):
            self.children.append(self._spawn(server, fd, env))
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.stdout.write(
            self.style.SUCCESS(
                f"livecomment is running at http://{shown}:{port}/ ({workers} {server} worker(s)); Ctrl-C stops it."
            )
        )
        self.stdout.flush()
        try:
            while not self.stopping:
                for i, child in enumerate(self.children):
                    if child.poll() is not None and not self.stopping:
                        self.stderr.write(f"worker {child.pid} exited with {child.returncode}; restarting")
                        self.children[i] = self._spawn(server, fd, env)
                time.sleep(0.5)
        finally:
            self._stop_children()
            listener.close()
            embedded_redis.stop_owned()
            self.stdout.write("Stopped.")

    def _spawn(self, server: str, fd: int, env: dict) -> subprocess.Popen:
        app = "livecomment.asgi:application"
        if server == "daphne":
            # No --proxy-headers: Daphne would trust any client's X-Forwarded-For;
            # the app applies NUM_PROXIES itself (livecomment/lib/limits.py).
            # Its plain-text access log only repeats the app's JSON request and
            # stream lines (livecomment/lib/middleware.py, dispatcher/).
            # livecomment.server.daphne_worker: Daphne with a lighter per-request `receive` queue.
            cmd = [
                sys.executable,
                "-m",
                "livecomment.server.daphne_worker",
                "--fd",
                str(fd),
                "--access-log",
                os.devnull,
                app,
            ]
        else:
            # Not `uvicorn --fd`: it would leave Nagle on (livecomment/server/uvicorn_worker.py).
            cmd = [sys.executable, "-m", "livecomment.server.uvicorn_worker", str(fd)]
        return subprocess.Popen(cmd, env=env, pass_fds=(fd,), preexec_fn=embedded_redis.die_with_parent)

    def _on_signal(self, signum, frame):
        self.stopping = True

    def _stop_children(self):
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
