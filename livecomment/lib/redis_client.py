"""Connections to Redis, the hot store.

One connection pool per process (sync) and one per event loop (async). Every
caller asks for the client of a video (`for_video`) so that sharding the hot
store over several Redis hosts changes this module only:

* one Redis (REDIS_URL, or the embedded one): its client for every video;
* REDIS_URLS: the client of the video's host, a stable hash of the video id;
* REDIS_CLUSTER_URL: redis-py's cluster client (`redis.cluster.RedisCluster`,
  `redis.asyncio.cluster.RedisCluster`) for every video. Every key of a video
  carries the hash tag `{<video id>}` (comments/hotstore.py, dispatcher/hub.py),
  so one video's keys share a slot, its scripts and pipelines never cross
  slots, and losing a node affects only the videos whose slots it serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import weakref
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from django.conf import settings
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import ClusterError, NoScriptError, RedisClusterException, SlotNotCoveredError

from livecomment.server.embedded_redis import ensure_from_settings

# Errors that mean "Redis is not there right now" (answered with 503). The
# cluster clients below raise ClusterUnavailable, a ConnectionError, for theirs.
UNAVAILABLE_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)

_sync_clients: dict[tuple[int, str], redis.Redis] = {}
_sync_lock = threading.Lock()
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = (
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


# -- Redis Cluster ----------------------------------------------------------------


class ClusterUnavailable(redis.ConnectionError):
    """The cluster cannot serve the command now: no node answered, the slot's
    node is down or unknown, or the cluster says CLUSTERDOWN."""


def _as_unavailable(exc: Exception) -> ClusterUnavailable | None:
    # redis-py raises RedisClusterException for "no node could be reached" (the
    # connection error as its cause) as well as for mistakes such as keys in
    # different slots; only the first kind means "unavailable".
    if isinstance(exc, (ClusterError, SlotNotCoveredError)) or (
        isinstance(exc, RedisClusterException) and isinstance(exc.__cause__, (*UNAVAILABLE_ERRORS, ClusterError))
    ):
        return ClusterUnavailable(f"Redis Cluster unavailable: {exc}")
    return None


class SyncCluster(redis.cluster.RedisCluster):
    """redis-py's cluster client whose outages are ConnectionErrors, like a
    single Redis's: every caller's `except UNAVAILABLE_ERRORS` (503) applies."""

    def execute_command(self, *args, **kwargs):
        try:
            return super().execute_command(*args, **kwargs)
        except (ClusterError, RedisClusterException) as exc:
            unavailable = _as_unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc


class AsyncCluster(aiocluster.RedisCluster):
    """The asyncio cluster client, with outages as ConnectionErrors."""

    async def execute_command(self, *args, **kwargs):
        try:
            return await super().execute_command(*args, **kwargs)
        except (ClusterError, RedisClusterException) as exc:
            unavailable = _as_unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc


_cluster_clients: dict[tuple[int, str], SyncCluster] = {}


def cluster_mode() -> bool:
    return bool(getattr(settings, "REDIS_CLUSTER_URL", ""))


def cluster_seeds(urls: str | None = None) -> list[str]:
    """The seed nodes of REDIS_CLUSTER_URL (comma-separated URLs)."""
    urls = settings.REDIS_CLUSTER_URL if urls is None else urls
    return [u.strip() for u in urls.split(",") if u.strip()]


def _cluster_options() -> dict:
    return {**_options(), "require_full_coverage": False}


def cluster_client(urls: str | None = None) -> SyncCluster:
    """The process's cluster client (sync). It asks the seeds for the slot map
    once, follows MOVED, and rereads the map when a node fails; a command for a
    slot whose node is down raises ConnectionError, other slots keep working."""
    urls = urls or settings.REDIS_CLUSTER_URL
    key = (os.getpid(), urls)
    client = _cluster_clients.get(key)
    if client is None:
        with _sync_lock:
            client = _cluster_clients.get(key)
            if client is None:
                first, *others = cluster_seeds(urls)
                try:
                    client = SyncCluster.from_url(
                        first,
                        startup_nodes=[redis.cluster.ClusterNode(*_host_port(u)) for u in others],
                        **_cluster_options(),
                    )
                except RedisClusterException as exc:  # no seed answered
                    raise ClusterUnavailable(f"Redis Cluster unreachable: {exc}") from exc
                _cluster_clients[key] = client
    return client


def async_cluster_client(urls: str | None = None) -> AsyncCluster:
    """The cluster client of the running event loop (it connects on first use)."""
    urls = urls or settings.REDIS_CLUSTER_URL
    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        clients = _async_clients[loop] = {}
    key = "cluster:" + urls
    client = clients.get(key)
    if client is None:
        first, *others = cluster_seeds(urls)
        client = clients[key] = AsyncCluster.from_url(
            first,
            startup_nodes=[aiocluster.ClusterNode(*_host_port(u)) for u in others],
            **_cluster_options(),
        )
    return client


def known_cluster_nodes() -> list[tuple[str, int]]:
    """(host, port) of every node this process's cluster client knows (none
    before it connected): more ways in than the seeds for another client."""
    client = _cluster_clients.get((os.getpid(), settings.REDIS_CLUSTER_URL))
    try:
        return [(node.host, node.port) for node in client.get_nodes()] if client is not None else []
    except UNAVAILABLE_ERRORS:
        return []


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or 6379


def _node_url(host: str, port: int) -> str:
    """A cluster node's URL, with the first seed's scheme and credentials."""
    seed = urlsplit(cluster_seeds()[0])
    userinfo = seed.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@" if userinfo else ""
    netloc += f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit((seed.scheme, netloc, "", seed.query, ""))


def cluster_node_urls(connect: bool = True) -> list[str]:
    """The cluster's primaries as URLs (a plain client of one is `sync_client(url)`),
    from the slot map the process's cluster client holds; the seeds while it
    has none. connect=False never connects (safe inside an event loop)."""
    try:
        client = cluster_client() if connect else _cluster_clients.get((os.getpid(), settings.REDIS_CLUSTER_URL))
        primaries = client.get_primaries() if client is not None else []
    except UNAVAILABLE_ERRORS:
        primaries = []
    if not primaries:
        return cluster_seeds()
    return sorted(_node_url(node.host, node.port) for node in primaries)


def _same_node(a: str, b: str) -> bool:
    return _host_port(a) == _host_port(b)


# -- sharding the hot store by video ---------------------------------------------


def shard_urls() -> list[str]:
    """The Redis hosts this process depends on: REDIS_URLS, or the one REDIS_URL.

    On a cluster: its primaries, plus REDIS_URL (the channel layer's host)
    when that is not one of them. Gateways watch each of them (dispatcher/hub.py)
    and /healthz pings each.
    """
    if cluster_mode():
        nodes = cluster_node_urls(connect=False)  # the hub calls this in its event loop
        if not any(_same_node(settings.REDIS_URL, node) for node in nodes):
            nodes.append(settings.REDIS_URL)
        return nodes
    return list(getattr(settings, "REDIS_SHARDS", None) or [settings.REDIS_URL])


def shard_index(video_id: int, count: int | None = None) -> int:
    """Which host holds a video's stream and keys: a stable hash of the video id.

    The same function channels-redis's pub/sub layer uses to place the video's
    group channel, so one host carries both the video's stream and its
    fan-out, and losing a host affects only its videos. (Not used on a
    cluster: there the slot of the hash tag `{<video id>}` decides.)
    """
    count = count or len(shard_urls())
    if count == 1:
        return 0
    from channels_redis.utils import _consistent_hash

    return _consistent_hash(f"{settings.CHANNEL_LAYER_PREFIX}__group__video.{video_id}", count)


def url_for_video(video_id: int) -> str:
    urls = shard_urls()
    return urls[shard_index(video_id, len(urls))]


def for_video(video_id: int) -> redis.Redis | SyncCluster:
    if cluster_mode():
        return cluster_client()
    return sync_client(url_for_video(video_id))


def async_for_video(video_id: int) -> aioredis.Redis | AsyncCluster:
    if cluster_mode():
        return async_cluster_client()
    return async_client(url_for_video(video_id))


def site_client() -> redis.Redis | SyncCluster:
    """The client for keys of no one video (the relay's inboxes): the cluster,
    or REDIS_URL."""
    return cluster_client() if cluster_mode() else sync_client()


def _node_up(url: str, cluster_node: bool) -> bool:
    """The host answers; a cluster node also says the cluster is up
    (`cluster_state:ok`: with cluster-require-full-coverage yes a node that
    lost sight of a slot's owner refuses every command)."""
    try:
        client = sync_client(url)
        if not cluster_node:
            return bool(client.ping())
        return client.execute_command("CLUSTER INFO").get("cluster_state") == "ok"
    except UNAVAILABLE_ERRORS:
        return False
    except redis.ResponseError:  # not a cluster node after all
        return False


def ping_shards() -> dict[str, bool]:
    if cluster_mode():
        nodes = cluster_node_urls()
        result = {url: _node_up(url, True) for url in nodes}
        if not any(_same_node(settings.REDIS_URL, node) for node in nodes):
            result[settings.REDIS_URL] = _node_up(settings.REDIS_URL, False)
        return result
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


# -- the throttles' cache on a cluster ---------------------------------------------


class _ClusterCacheClient(RedisCacheClient):
    """Django's Redis cache client over redis-py's cluster client: one client
    per process (it keeps a pool per node), multi-key calls split by slot."""

    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        self._options = {k: v for k, v in options.items() if k not in ("serializer", "pool_class", "parser_class")}
        self._cluster = None

    def get_client(self, key=None, *, write=False):
        if self._cluster is None:
            first, *others = [s.strip() for s in self._servers if s.strip()]
            # Also the nodes the hot store's client found, so a seed that is
            # down does not keep the throttles off the rest of the cluster.
            nodes = {_host_port(u) for u in others} | set(known_cluster_nodes() if cluster_mode() else [])
            try:
                self._cluster = SyncCluster.from_url(
                    first,
                    startup_nodes=[redis.cluster.ClusterNode(*node) for node in sorted(nodes)],
                    require_full_coverage=False,
                    **self._options,
                )
            except RedisClusterException as exc:
                raise ClusterUnavailable(f"Redis Cluster unreachable: {exc}") from exc
        return self._cluster

    def get_many(self, keys):
        return {k: v for k in keys if (v := self.get(k, None)) is not None}

    def set_many(self, data, timeout):
        for key, value in data.items():
            self.set(key, value, timeout)

    def delete_many(self, keys):
        for key in keys:
            self.delete(key)

    def clear(self):
        return bool(self.get_client(None, write=True).flushdb(target_nodes=SyncCluster.PRIMARIES))


class RedisClusterCache(RedisCache):
    """CACHES backend for REDIS_CLUSTER_URL: LOCATION is the seed node URL(s)."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ClusterCacheClient


# -- Lua scripts -------------------------------------------------------------------

_shas: dict[str, str] = {}


def run_script(client, source: str, keys: list[str], args: list):
    """Run a Lua script: EVALSHA, or EVAL when the server does not have it yet.

    Not redis-py's registered Script: on a cluster, its fallback (SCRIPT LOAD)
    goes to every primary, so one node being down would fail scripts for
    videos on the others. EVAL goes to the keys' node only (and caches it there).
    """
    sha = _shas.get(source)
    if sha is None:
        sha = _shas[source] = hashlib.sha1(source.encode()).hexdigest()
    try:
        return client.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        return client.eval(source, len(keys), *keys, *args)
