"""Connections to Redis, the hot store.

One connection pool per process (sync) and one per event loop (async). Every
caller asks for the client of a video (`for_video`) so that sharding the hot
store over several Redis hosts changes this module only.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings

from livecomment.embedded_redis import ensure_from_settings

# Errors that mean "Redis is not there right now" (answered with 503).
UNAVAILABLE_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)

_sync_clients: dict[tuple[int, str], redis.Redis] = {}
_sync_lock = threading.Lock()
_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]]" = (
    weakref.WeakKeyDictionary()
)


def _options() -> dict:
    return {
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
        "health_check_interval": 30,
        "decode_responses": True,
    }


def sync_client(url: str | None = None) -> redis.Redis:
    url = url or settings.REDIS_URL
    key = (os.getpid(), url)  # a forked child must not share its parent's sockets
    client = _sync_clients.get(key)
    if client is None:
        with _sync_lock:
            client = _sync_clients.get(key)
            if client is None:
                ensure_from_settings()
                client = redis.Redis.from_url(url, **_options())
                _sync_clients[key] = client
    return client


def async_client(url: str | None = None) -> aioredis.Redis:
    url = url or settings.REDIS_URL
    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        clients = _async_clients[loop] = {}
    client = clients.get(url)
    if client is None:
        client = clients[url] = aioredis.Redis.from_url(url, **_options())
    return client


# -- sharding the hot store by video ---------------------------------------------


def shard_urls() -> list[str]:
    """The Redis hosts of the hot store (REDIS_URLS), or the one REDIS_URL."""
    return list(getattr(settings, "REDIS_SHARDS", None) or [settings.REDIS_URL])


def shard_index(video_id: int, count: int | None = None) -> int:
    """Which host holds a video's stream and keys: a stable hash of the video id.

    The same function channels-redis's pub/sub layer uses to place the video's
    group channel, so one host carries both the video's stream and its
    fan-out, and losing a host affects only its videos.
    """
    count = count or len(shard_urls())
    if count == 1:
        return 0
    from channels_redis.utils import _consistent_hash

    return _consistent_hash(f"{settings.CHANNEL_LAYER_PREFIX}__group__video.{video_id}", count)


def url_for_video(video_id: int) -> str:
    urls = shard_urls()
    return urls[shard_index(video_id, len(urls))]


def for_video(video_id: int) -> redis.Redis:
    return sync_client(url_for_video(video_id))


def async_for_video(video_id: int) -> aioredis.Redis:
    return async_client(url_for_video(video_id))


def ping_shards() -> dict[str, bool]:
    result = {}
    for url in shard_urls():
        try:
            result[url] = bool(sync_client(url).ping())
        except UNAVAILABLE_ERRORS:
            result[url] = False
    return result


def ping() -> bool:
    """Every Redis host answers."""
    return all(ping_shards().values())
