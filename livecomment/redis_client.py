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
_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis]" = (
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


def async_client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(settings.REDIS_URL, **_options())
        _async_clients[loop] = client
    return client


def for_video(video_id: int) -> redis.Redis:
    return sync_client()


def async_for_video(video_id: int) -> aioredis.Redis:
    return async_client()


def ping() -> bool:
    try:
        return bool(sync_client().ping())
    except UNAVAILABLE_ERRORS:
        return False
