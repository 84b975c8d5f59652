"""Loaded with `-p` before Django's settings: gives the test run its own state.

Without REDIS_URL in the environment the run starts its own embedded
redis-server (the same code path `make run` uses) under a fresh VAR_DIR and
stops it at exit. With REDIS_URL set (CI's production-shape run against the
machine's Redis) every test flushes that database first, so point it at a
database of its own, e.g. redis://127.0.0.1:6379/15.
"""

import os
import tempfile

_var_dir = tempfile.mkdtemp(prefix="livecomment-test-")
os.environ["VAR_DIR"] = _var_dir
os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ.setdefault("DEBUG", "1")
# The in-process test client's data lives in one thread's open transaction;
# gateway processes the tests start get API_THREAD_POOL=1 (tests/servers.py).
os.environ["API_THREAD_POOL"] = "0"

if not os.environ.get("REDIS_URL"):
    from livecomment.server.embedded_redis import ensure_running

    ensure_running(_var_dir)  # from the main thread: dies with the test run
