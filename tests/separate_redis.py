"""A redis-server of a test's own, which the test may stop (and start again).

The run's shared Redis must stay up for every other test, so tests of "Redis
is down" point the app at a second real redis-server:

    def test_something(separate_redis):
        ...                      # the app talks to separate_redis
        separate_redis.stop()    # now Redis is down
        separate_redis.start()   # and back (empty unless persist=True)

`livecomment.lib.redis_client` caches one client per URL, so the new URL gets its
own client; the cache and the channel layer are reset by Django's and
Channels' setting_changed handlers.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest

from livecomment.server.embedded_redis import EmbeddedRedis


def point_app_at(settings, url: str) -> None:
    settings.REDIS_URL = url
    layers = {**settings.CHANNEL_LAYERS}
    layers["default"] = {**layers["default"], "CONFIG": {**layers["default"]["CONFIG"], "hosts": [url]}}
    settings.CHANNEL_LAYERS = layers
    caches = {**settings.CACHES}
    caches["default"] = {**caches["default"], "LOCATION": url}
    settings.CACHES = caches


def _serve(settings, persist: bool):
    # A short directory: a unix socket path must fit in 108 bytes, and
    # pytest's tmp_path (named after the test) may not.
    var_dir = tempfile.mkdtemp(prefix="lc-redis-")
    server = EmbeddedRedis(var_dir, persist=persist)
    server.start()
    point_app_at(settings, server.url)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture
def separate_redis(settings):
    """A non-persistent redis-server the app uses for this test only."""
    yield from _serve(settings, persist=False)


@pytest.fixture
def persistent_separate_redis(settings):
    """Like separate_redis, but keeps its keys across stop() and start()
    (append-only file): a restart or a network blip, not a wiped server."""
    yield from _serve(settings, persist=True)
