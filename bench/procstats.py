"""Server-side measurements with psutil: RSS and CPU seconds of a target's
process tree, split into gateway processes (the ones holding connections)
and helpers (redis-server, the `serve` supervisor)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

GATEWAY_NAMES = {
    "daphne",
    "uvicorn",
    "bench.ceiling",
    "livecomment.server.uvicorn_worker",
    "livecomment.server.daphne_worker",
}


def tree(root_pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(root_pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def is_redis(p: psutil.Process) -> bool:
    try:
        return "redis-server" in (p.name() + " " + " ".join(p.cmdline()[:1]))
    except psutil.Error:
        return False


def is_gateway(p: psutil.Process) -> bool:
    """A process serving connections: `python -m daphne|uvicorn|bench.ceiling`
    (not the `manage.py serve` supervisor, whose arguments also name them)."""
    try:
        head = p.cmdline()[:3]
    except psutil.Error:
        return False
    return any(os.path.basename(a) in GATEWAY_NAMES for a in head)


@dataclass
class Snapshot:
    gateway_rss: int
    gateway_cpu: float
    redis_cpu: float
    other_cpu: float
    gateway_pids: list[int]

    def as_dict(self) -> dict:
        return {
            "gateway_rss": self.gateway_rss,
            "gateway_cpu": self.gateway_cpu,
            "redis_cpu": self.redis_cpu,
            "other_cpu": self.other_cpu,
            "gateway_pids": self.gateway_pids,
        }


def snapshot(root_pids: list[int]) -> Snapshot:
    rss = 0
    gcpu = rcpu = ocpu = 0.0
    pids = []
    seen = set()
    for root in root_pids:
        for p in tree(root):
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                ct = p.cpu_times()
                cpu = ct.user + ct.system
                if is_gateway(p):
                    rss += p.memory_info().rss
                    gcpu += cpu
                    pids.append(p.pid)
                elif is_redis(p):
                    rcpu += cpu
                else:
                    ocpu += cpu
            except psutil.Error:
                continue
    return Snapshot(rss, gcpu, rcpu, ocpu, sorted(pids))


def connections_per_process(pids: list[int], port: int) -> dict[int, int]:
    """Established TCP connections on `port` held by each of `pids`."""
    out = {}
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        out[pid] = sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)
    return out


def machine() -> dict:
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
