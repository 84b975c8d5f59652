"""One fan-out run: N connections, M comments at R/s, against one target.

Phases, each bounded in time:
1. start the target (fresh, free loopback port), wait until its G gateway
   processes are up and idle; measure their RSS;
2. start P client processes (bench/client.py) holding N connections between
   them; wait until all are connected (or the connect deadline passes);
3. warm-up: publish one marked comment and wait until every connection got it
   -- proof that each subscription is live before measuring; measure RSS
   again (the difference / N is the memory per idle connection);
4. publish M comments at R/s (open loop) through the target's API;
5. drain: wait until every acknowledged comment reached every connection, or
   deliveries stopped growing for `settle` seconds, or the drain deadline;
6. collect: lost / duplicated / out of order per connection, latency
   histogram, timelines, CPU seconds of server and client processes.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing as mp
import time
import uuid

import psutil

from bench import client, httpc, procstats, publisher
from bench.targets import HOST, Target

CTX = mp.get_context("spawn")


def _busy(t) -> float:
    """Busy CPU seconds of the whole machine from psutil.cpu_times()."""
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def merge_hist(hists: list[dict]) -> dict[int, int]:
    out: dict[int, int] = {}
    for h in hists:
        for k, v in h.items():
            out[int(k)] = out.get(int(k), 0) + v
    return out


def hist_percentiles(hist: dict[int, int], points=(50, 90, 99)) -> dict:
    total = sum(hist.values())
    res = {}
    if not total:
        return {f"p{p}": None for p in points}
    items = sorted(hist.items())
    for p in points:
        need = math.ceil(total * p / 100)
        acc = 0
        for k, v in items:
            acc += v
            if acc >= need:
                # upper edge of the bucket, in ms: conservative (1 % resolution)
                res[f"p{p}"] = round(client.bucket_floor_us(k + 1) / 1000, 2)
                break
    return res


class Clients:
    """The client processes and their pipes."""

    def __init__(
        self,
        target: Target,
        n: int,
        procs: int,
        run: str,
        max_seq: int,
        ws_share: float,
        connect_timeout: float,
        lifetime: float,
    ):
        self.pipes = []
        self.procs = []
        procs = max(1, min(procs, n)) if n else 1
        share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        n_ws_total = int(round(n * ws_share))
        if n_ws_total and not target.ws_path:
            raise ValueError(f"{target.label} has no WebSocket endpoint")
        for i, k in enumerate(share):
            n_ws = n_ws_total // procs + (1 if i < n_ws_total % procs else 0)
            cfg = {
                "host": "127.0.0.1",
                "port": target.port,
                "sse_path": target.sse_path,
                "ws_path": target.ws_path,
                "run": run,
                "max_seq": max_seq,
                "n": k,
                "n_ws": min(n_ws, k),
                "connect_timeout": connect_timeout,
                "lifetime": lifetime,
                "connect_concurrency": 64,
            }
            parent, child = CTX.Pipe()
            p = CTX.Process(target=client.worker_main, args=(cfg, child), daemon=True)
            p.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(p)

    def wait_connected(self, timeout: float) -> tuple[int, int]:
        ok = failed = 0
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(0.1, deadline - time.monotonic())):
                raise TimeoutError("client process did not report its connections in time")
            msg = pipe.recv()
            ok += msg[1]
            failed += msg[2]
        return ok, failed

    def send(self, msg) -> None:
        for pipe in self.pipes:
            pipe.send(msg)

    def ask(self, msg, timeout: float = 30.0) -> list:
        self.send(msg)
        out = []
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(0.1, deadline - time.monotonic())):
                raise TimeoutError(f"client process did not answer {msg[0]!r}")
            out.append(pipe.recv())
        return out

    def stats(self) -> tuple[int, int, int, int]:
        rows = self.ask(("stat",), timeout=10)
        return tuple(sum(r[i] for r in rows) for i in range(1, 5))

    def cpu(self) -> float:
        total = 0.0
        for p in self.procs:
            try:
                ct = psutil.Process(p.pid).cpu_times()
                total += ct.user + ct.system
            except psutil.Error:
                pass
        return total

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("close",))
            except OSError:
                pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)


def run_fanout(
    target: Target,
    *,
    connections: int,
    rate: float,
    comments: int,
    client_procs: int = 2,
    ws_share: float = 0.0,
    max_inflight: int = 32,
    drain_timeout: float = 30.0,
    settle: float = 3.0,
    publish_timeout: float = 30.0,
    log=print,
) -> dict:
    """Run one measurement against an already started target; returns a result dict."""
    run = uuid.uuid4().hex[:10]
    n = connections
    result: dict = {
        "target": target.kind,
        "label": target.label,
        "server": target.server,
        "gateways": target.gateways,
        "connections_requested": n,
        "rate": rate,
        "comments": comments,
        "ws_share": ws_share,
        "client_procs": client_procs,
        "run": run,
        "ordered_by": "seq" if target.id_kind == "none" else "id",
    }
    before = target.snapshot()
    connect_timeout = 30 + n / 250
    t_conn = time.monotonic()
    clients = Clients(
        target,
        n,
        client_procs,
        run,
        max_seq=comments,
        ws_share=ws_share,
        connect_timeout=connect_timeout,
        lifetime=connect_timeout + 120 + comments / rate + drain_timeout,
    )
    try:
        ok, failed = clients.wait_connected(connect_timeout + 30)
        result["connect_s"] = round(time.monotonic() - t_conn, 2)
        log(f"  connected {ok}/{n} in {result['connect_s']}s ({failed} failed)")
        if not ok:
            raise RuntimeError(f"no connection could be opened to {target.label}:\n{target.log_tail()}")

        # Warm-up: every connection must see a marked comment before we measure.
        warm_ok = 0
        for attempt in range(3):
            warm = asyncio.run(publisher.publish_open_loop(target, run, 1, 1.0, kind="w", seq_start=attempt))
            if not warm.acked:
                log(f"  warm-up post failed: {warm.as_dict()}")
            deadline = time.monotonic() + 10 + n / 1000
            while time.monotonic() < deadline:
                _, warm_ok, open_now, _ = clients.stats()
                if warm_ok >= open_now:
                    break
                time.sleep(0.1)
            if warm_ok >= ok:
                break
        result["warm_connections"] = warm_ok
        if warm_ok < ok:
            log(f"  warning: only {warm_ok}/{ok} connections saw the warm-up comment")
        time.sleep(0.5)
        after = target.snapshot()
        per_proc = procstats.connections_per_process(after.gateway_pids, target.port)
        result["connections_per_gateway"] = list(per_proc.values())

        # Measure.
        cpu0 = target.snapshot()
        ccpu0 = clients.cpu()
        me = psutil.Process()
        own0 = sum(me.cpu_times()[:2])
        sys0 = psutil.cpu_times()
        wall0 = time.monotonic()
        load0 = psutil.getloadavg()[0]
        psutil.cpu_percent(None)
        t0_ns = time.time_ns()
        clients.send(("go", t0_ns))
        pub = asyncio.run(
            publisher.publish_open_loop(target, run, comments, rate, max_inflight=max_inflight, timeout=publish_timeout)
        )
        pub_end = time.monotonic()
        # Drain. Workers count every delivery of this run, acknowledged or not
        # (a post that timed out may still have been stored and delivered), so
        # "done" is all *sent* comments on every connection; otherwise wait
        # until deliveries stop growing for `settle` s (bounded by drain_timeout).
        target_all = pub.sent * ok
        delivered = 0
        last_change = time.monotonic()
        drain_deadline = pub_end + drain_timeout
        while time.monotonic() < drain_deadline:
            d, _, _, _ = clients.stats()
            if d != delivered:
                delivered = d
                last_change = time.monotonic()
            if delivered >= target_all or time.monotonic() - last_change > settle:
                break
            time.sleep(0.2)
        result["drain_s"] = round(time.monotonic() - pub_end, 2)
        machine_cpu = psutil.cpu_percent(None)
        cpu1 = target.snapshot()
        ccpu1 = clients.cpu()
        own1 = sum(me.cpu_times()[:2])
        sys1 = psutil.cpu_times()
        wall1 = time.monotonic()
        reports = [r[1] for r in clients.ask(("report", pub.acked), timeout=60)]
        result["gateway_stats"] = gateway_stats(target)
    finally:
        clients.close()

    conns = sum(r["connections"] for r in reports)
    deliveries = sum(r["deliveries"] for r in reports)
    last = max((r["last_ns"] for r in reports), default=0)
    hist = merge_hist([r["hist"] for r in reports])
    timeline: list[int] = []
    for r in reports:
        for i, v in enumerate(r["timeline"]):
            if i >= len(timeline):
                timeline.append(0)
            timeline[i] += v
    # First send -> last receipt, but never shorter than the publishing schedule
    # (M comments at R/s take M/R s): the sustained delivery rate.
    span = max((last / 1e9 - pub.first_send) if last and pub.first_send else 0, comments / rate if rate else 0)
    pub_span = pub.last_send - pub.first_send
    gw_cpu = cpu1.gateway_cpu - cpu0.gateway_cpu
    lost = sum(r["lost"] for r in reports)
    max_ms = round(max((r["max_us"] for r in reports), default=0) / 1000, 2)
    acked = len(pub.acked)
    expected = acked * conns
    # Deliveries/s while publishing: count the 100 ms buckets that fall in the
    # publishing window (steady state, excludes the drain).
    window_buckets = max(1, int(pub_span * 10))
    start_b = 0
    in_window = sum(timeline[start_b : start_b + window_buckets])
    result.update(
        {
            "connections": conns,
            "connect_failed": failed,
            "ws_connections": sum(r["ws_connections"] for r in reports),
            "publish": pub.as_dict(),
            "acked": acked,
            "offered_per_s": round(rate * conns, 1),
            "offered_actual_per_s": round(pub.rate * conns, 1),
            "deliveries": deliveries,
            "expected": expected,
            "delivered_pct": round(100.0 * (expected - lost) / expected, 3) if expected else 0.0,
            "lost": lost,
            "conns_with_loss": sum(r["conns_with_loss"] for r in reports),
            "duplicated": sum(r["duplicated"] for r in reports),
            "out_of_order": sum(r["out_of_order"] for r in reports),
            "unacked_delivered": sum(r["unacked_delivered"] for r in reports),
            "invalid": sum(r["invalid"] for r in reports),
            "disconnects": sum(r["disconnects"] for r in reports),
            "reconnects": sum(r["reconnects"] for r in reports),
            # all deliveries over first send -> last receipt: the sustained rate
            "deliveries_per_s": round(deliveries / span, 1) if span > 0 else 0.0,
            "deliveries_per_s_in_window": round(in_window / (window_buckets / 10), 1),
            "latency_ms": {k: (min(v, max_ms) if v is not None else None) for k, v in hist_percentiles(hist).items()}
            | {"max": max_ms},
            "rss_before": before.gateway_rss,
            "rss_after": after.gateway_rss,
            "rss_per_conn_kib": round((after.gateway_rss - before.gateway_rss) / conns / 1024, 2) if conns else None,
            "gateway_cpu_s": round(gw_cpu, 2),
            "redis_cpu_s": round(cpu1.redis_cpu - cpu0.redis_cpu, 2),
            "other_server_cpu_s": round(cpu1.other_cpu - cpu0.other_cpu, 2),
            "client_cpu_s": round(ccpu1 - ccpu0, 2),
            "machine_cpu_pct": machine_cpu,
            # CPU the machine spent outside this run's processes (other work on
            # a shared machine, unattributed kernel time), in cores: noise gauge
            "foreign_cores": round(
                max(
                    0.0,
                    _busy(sys1)
                    - _busy(sys0)
                    - (cpu1.gateway_cpu - cpu0.gateway_cpu)
                    - (cpu1.redis_cpu - cpu0.redis_cpu)
                    - (cpu1.other_cpu - cpu0.other_cpu)
                    - (ccpu1 - ccpu0)
                    - (own1 - own0),
                )
                / max(0.001, wall1 - wall0),
                2,
            ),
            "loadavg_1m_at_start": round(load0, 2),
            "cpu_us_per_delivery": round(gw_cpu / deliveries * 1e6, 2) if deliveries else None,
            "timeline_100ms": timeline[:600],
            "client_errors": sorted({e for r in reports for e in r["errors"]})[:5],
        }
    )
    return result


def gateway_stats(target: Target, tries: int = 20) -> list[dict]:
    """livecomment: each gateway's hub counters (/gateway/stats: deliveries,
    repairs, stale messages, bursts), one per process; with several gateways
    on one port a request reaches any of them, so ask until each answered."""
    if target.kind != "livecomment":
        return []
    seen: dict[str, dict] = {}
    for _ in range(tries):
        try:
            status, body = httpc.get(HOST, target.port, "/gateway/stats", timeout=5)
        except OSError:
            continue
        if status == 200:
            stats = json.loads(body)
            stats.pop("received_by_video", None)
            seen.setdefault(stats.get("channel") or "?", stats)
        if len(seen) >= target.gateways:
            break
    return list(seen.values())


def summary_line(r: dict) -> str:
    lat = r.get("latency_ms", {})
    return (
        f"{r['label']:<34} N={r['connections']:>6} R={r['rate']:>5g}/s pub={r['publish']['publish_rate']:>6g}/s "
        f"deliv/s={r['deliveries_per_s']:>9,.0f} ({r['delivered_pct']:.1f}%) lost={r['lost']} dup={r['duplicated']} "
        f"ooo={r['out_of_order']} p50={lat.get('p50')} p99={lat.get('p99')} max={lat.get('max')}ms "
        f"rss/conn={r['rss_per_conn_kib']}KiB cpu/deliv={r['cpu_us_per_delivery']}us"
    )
