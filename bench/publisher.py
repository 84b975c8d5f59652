"""Publishing comments through a target's real API.

`publish_open_loop` posts `count` comments at `rate`/s on a schedule that does
not wait for answers (open loop), over a pool of keep-alive connections (at
most `max_inflight` requests in flight). When every connection is busy the
publisher falls behind schedule -- that is reported, not hidden: the achieved
publish rate is part of the result. Each comment's text carries the run id,
its sequence number and its send time (ns since the epoch) so every viewer
can compute post->receipt latency: ``lcb <run> m<seq> <time_ns>``.

`write_closed_loop` is the write benchmark: C posters, each sending its next
comment when the previous one was answered, for a fixed time.
`write_open_loop` is its other form: comments offered at a fixed rate, from
many users, whatever the answers -- what "accepts 1,000 comments a second"
means for a service whose posters are people, not a fixed set of clients.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from bench import httpc


def comment_text(run: str, kind: str, seq: int) -> str:
    return f"lcb {run} {kind}{seq} {time.time_ns()}"


@dataclass
class PublishResult:
    sent: int = 0
    acked: list[int] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    first_send: float = 0.0
    last_send: float = 0.0
    max_lag_ms: float = 0.0
    planned: int = 0
    gave_up: int = 0

    @property
    def rate(self) -> float:
        span = self.last_send - self.first_send
        return (self.sent - 1) / span if self.sent > 1 and span > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "planned": self.planned,
            "sent": self.sent,
            "not_sent": self.gave_up,
            "acked": len(self.acked),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "errors": dict(self.errors),
            "publish_rate": round(self.rate, 2),
            "max_schedule_lag_ms": round(self.max_lag_ms, 1),
            "request_ms": percentiles(self.latencies_ms),
        }


def percentiles(values: list[float], points=(50, 90, 99)) -> dict:
    if not values:
        return {f"p{p}": None for p in points} | {"max": None}
    s = sorted(values)
    out = {f"p{p}": round(s[min(len(s) - 1, int(len(s) * p / 100))], 2) for p in points}
    out["max"] = round(s[-1], 2)
    return out


async def publish_open_loop(
    target,
    run: str,
    count: int,
    rate: float,
    *,
    kind: str = "m",
    seq_start: int = 1,
    max_inflight: int = 32,
    timeout: float = 10.0,
    deadline: float | None = None,
) -> PublishResult:
    """Post `count` comments at `rate`/s. Stops scheduling new ones after
    `deadline` seconds (default: twice the schedule plus 20 s) -- a publisher
    that fell that far behind has said what there is to say."""
    res = PublishResult()
    res.planned = count
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(max_inflight):
        pool.put_nowait(httpc.Conn("127.0.0.1", target.port))
    tasks = []
    loop = asyncio.get_running_loop()

    async def send(i: int, seq: int, conn: httpc.Conn):
        text = comment_text(run, kind, seq)
        path, headers, body = target.publish_request(i, text)
        t = time.time()
        if not res.first_send:
            res.first_send = t
        res.last_send = max(res.last_send, t)
        res.sent += 1
        try:
            status, _ = await conn.request("POST", path, body, headers, timeout=timeout)
            res.statuses[status] += 1
            if status in (200, 201):
                res.acked.append(seq)
                res.latencies_ms.append((time.time() - t) * 1000)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, httpc.HTTPError) as exc:
            res.errors[type(exc).__name__] += 1
        finally:
            pool.put_nowait(conn)

    start = loop.time()
    stop_at = start + (deadline if deadline is not None else 2 * count / rate + 20)
    for i in range(count):
        if loop.time() > stop_at:
            res.gave_up = count - i
            break
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            conn = await asyncio.wait_for(pool.get(), max(0.01, stop_at - loop.time()) + timeout)
        except TimeoutError:
            res.gave_up = count - i
            break
        res.max_lag_ms = max(res.max_lag_ms, (loop.time() - due) * 1000)
        tasks.append(loop.create_task(send(i, seq_start + i, conn)))
    if tasks:
        await asyncio.wait(tasks, timeout=timeout + 5)
    for t in tasks:
        t.cancel()
    while not pool.empty():
        pool.get_nowait().close()
    res.acked.sort()
    return res


async def write_open_loop(
    target, run: str, rate: float, duration: float, *, warmup: float = 1.0, max_inflight: int = 256, timeout=10.0
) -> WriteResult:
    """`rate` comments/s for `duration` s (after `warmup` s at the same rate,
    not counted), each from the next of the target's posting users, over at
    most `max_inflight` connections. Latency is from the request's send; a
    server that falls behind shows as a lower accepted rate (the schedule
    cannot send faster than connections come back) and longer latency."""
    await publish_open_loop(target, run + "w", max(1, int(rate * warmup)), rate, kind="w", max_inflight=max_inflight)
    count = max(1, int(rate * duration))
    started = time.monotonic()
    published = await publish_open_loop(target, run, count, rate, max_inflight=max_inflight, timeout=timeout)
    elapsed = max(duration, time.monotonic() - started)
    res = WriteResult(
        accepted=len(published.acked),
        statuses=published.statuses,
        errors=published.errors,
        latencies_ms=published.latencies_ms,
        duration=elapsed,
    )
    res.offered_per_s = rate
    res.not_sent = published.gave_up
    return res


@dataclass
class WriteResult:
    accepted: int = 0
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    duration: float = 0.0
    offered_per_s: float | None = None  # open loop: the rate offered
    not_sent: int = 0  # open loop: comments the schedule never sent (no connection came back in time)

    def as_dict(self) -> dict:
        return {
            "offered_per_s": self.offered_per_s,
            "not_sent": self.not_sent,
            "accepted": self.accepted,
            "accepted_per_s": round(self.accepted / self.duration, 1) if self.duration else 0,
            "duration_s": round(self.duration, 2),
            "statuses": {str(k): v for k, v in self.statuses.items()},
            "errors": dict(self.errors),
            "request_ms": percentiles(self.latencies_ms),
        }


async def write_closed_loop(
    target, run: str, concurrency: int, duration: float, *, warmup: float = 1.0, timeout: float = 10.0
) -> WriteResult:
    res = WriteResult()
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    t_measure = t_start + warmup
    t_end = t_measure + duration

    async def poster(i: int):
        conn = httpc.Conn("127.0.0.1", target.port)
        seq = 0
        try:
            while loop.time() < t_end:
                seq += 1
                text = comment_text(run, f"c{i}-", seq)
                path, headers, body = target.publish_request(i, text)
                t0 = loop.time()
                try:
                    status, _ = await conn.request("POST", path, body, headers, timeout=timeout)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, httpc.HTTPError) as exc:
                    if t0 >= t_measure:
                        res.errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue
                t1 = loop.time()
                if t0 >= t_measure and t1 <= t_end:
                    res.statuses[status] += 1
                    if status in (200, 201):
                        res.accepted += 1
                        res.latencies_ms.append((t1 - t0) * 1000)
        finally:
            conn.close()

    await asyncio.wait_for(
        asyncio.gather(*(poster(i) for i in range(concurrency))), timeout=warmup + duration + timeout + 10
    )
    res.duration = duration
    return res
