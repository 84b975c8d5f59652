"""Redis restarts without its data while comments are posted open-loop to many viewers.

One gateway holds the SSE viewers (raw-socket clients of bench/client.py, in
processes of their own); comments go in at ~20/s through another gateway; the
test's redis-server, which keeps nothing, is stopped and started mid-run, once
per run. Every viewer must get every acknowledged (201) comment exactly once,
in order: what the empty stream lost, the gateway repairs from the database.

FAULT_EMPTY_REDIS_VIEWERS and FAULT_EMPTY_REDIS_RUNS (per server) set the size;
the defaults keep `make test` short, `make faults` runs thousands of viewers.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import threading
import time

import httpx
import pytest
from rest_framework.authtoken.models import Token

from bench import client as bench_client
from tests.base import alice, video

pytestmark = [pytest.mark.faults, pytest.mark.processes]

VIEWERS = int(os.environ.get("FAULT_EMPTY_REDIS_VIEWERS", "300"))
RUNS = int(os.environ.get("FAULT_EMPTY_REDIS_RUNS", "2"))
RATE = 20.0  # comments per second, open loop
BEFORE, DOWN, AFTER = 2.0, 1.0, 3.0  # seconds of posting before the stop, Redis away, after the start
PER_RUN = int((BEFORE + DOWN + AFTER + 5) * RATE)  # room for every sequence number of a run


class Viewers:
    """SSE viewers in client processes (bench/client.py): they count, per
    connection, duplicates, order by event id, and which comments they got."""

    def __init__(self, port: int, video_id: int, n: int, marker: str, max_seq: int):
        ctx = mp.get_context("spawn")
        procs = 1 if n <= 1000 else 2
        self.pipes, self.procs = [], []
        for i in range(procs):
            cfg = {
                "host": "127.0.0.1",
                "port": port,
                "sse_path": f"/api/v1/videos/{video_id}/stream",
                "ws_path": "",
                "run": marker,
                "max_seq": max_seq,
                "n": n // procs + (1 if i < n % procs else 0),
                "connect_timeout": 120,
                "lifetime": 1800,
                "connect_concurrency": 64,
                "max_reconnects": 50,
            }
            parent, child = ctx.Pipe()
            process = ctx.Process(target=bench_client.worker_main, args=(cfg, child), daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(process)

    def _ask(self, message: tuple, timeout: float = 60) -> list:
        for pipe in self.pipes:
            pipe.send(message)
        replies = []
        for pipe in self.pipes:
            assert pipe.poll(timeout), f"a client process did not answer {message[0]!r}"
            replies.append(pipe.recv())
        return replies

    def wait_connected(self) -> int:
        connected = 0
        for pipe in self.pipes:
            assert pipe.poll(180), "client processes did not connect"
            connected += pipe.recv()[1]
        return connected

    def stats(self) -> dict:
        rows = self._ask(("stat",))
        return {
            key: sum(row[i] for row in rows)
            for i, key in enumerate(("deliveries", "warm", "connected", "disconnects"), start=1)
        }

    def report(self, acknowledged: list[int]) -> dict:
        totals: dict = {}
        for _, row in self._ask(("report", acknowledged)):
            for key in ("lost", "conns_with_loss", "duplicated", "out_of_order", "reconnects", "deliveries"):
                totals[key] = totals.get(key, 0) + row[key]
        return totals

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("close",))
            except OSError:
                pass
        for process in self.procs:
            process.join(10)
            if process.is_alive():
                process.kill()


class OpenLoopPoster(threading.Thread):
    """Posts at a fixed rate whatever the answers take; remembers which were acknowledged."""

    def __init__(self, base: str, token: str, video_id: int, marker: str, first_seq: int):
        super().__init__(daemon=True)
        self.url = f"{base}/api/v1/videos/{video_id}/comments/"
        self.headers = {"Authorization": f"Token {token}"}
        self.marker = marker
        self.seq = first_seq
        self.acknowledged: list[int] = []
        self.refused: dict[int, int] = {}
        self.unanswered = 0
        self.unexpected: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._post_all())

    async def _post_all(self) -> None:
        loop = asyncio.get_running_loop()
        tasks = []
        async with httpx.AsyncClient(timeout=10, headers=self.headers) as client:
            start = loop.time()
            n = 0
            while not self.stopping.is_set():
                tasks.append(loop.create_task(self._post(client, self.seq)))
                self.seq += 1
                n += 1
                await asyncio.sleep(max(0.0, start + n / RATE - loop.time()))
            await asyncio.gather(*tasks)

    async def _post(self, client: httpx.AsyncClient, seq: int) -> None:
        text = f"lcb {self.marker} m{seq} {time.time_ns()}"
        try:
            r = await client.post(self.url, json={"text": text})
        except httpx.HTTPError:
            self.unanswered += 1  # may or may not have been written: not counted either way
            return
        if r.status_code == 201:
            self.acknowledged.append(seq)
        else:
            self.refused[r.status_code] = self.refused.get(r.status_code, 0) + 1
            if r.status_code != 503 or not r.json()["error"]["code"].endswith("_unavailable"):
                self.unexpected.append(r.text[:200])

    def stop(self) -> list[int]:
        self.stopping.set()
        self.join(30)
        return sorted(self.acknowledged)


def warm_up(viewers: Viewers, poster_base: str, token: str, video_id: int, marker: str) -> None:
    """Post warm-up comments until every viewer is live."""
    with httpx.Client(timeout=10, headers={"Authorization": f"Token {token}"}) as client:
        for i in range(60):
            text = f"lcb {marker} w{i} {time.time_ns()}"
            assert client.post(f"{poster_base}/api/v1/videos/{video_id}/comments/", json={"text": text}).status_code
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if viewers.stats()["warm"] >= VIEWERS:
                    return
                time.sleep(0.2)
    raise AssertionError(f"viewers not live: {viewers.stats()}")


def wait_delivered(viewers: Viewers, expected: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and viewers.stats()["deliveries"] < expected:
        time.sleep(0.25)
    time.sleep(1.0)  # anything late or twice shows up too


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_it_loses_nothing_when_redis_restarts_empty_under_open_loop_posting(
    server, separate_redis, gateways, video, alice, fault_figures
):
    limits = {"MAX_STREAMS_PER_IP": "0"}  # every viewer comes from 127.0.0.1
    watched = gateways.start(server=server, **limits)
    posting = gateways.start(server=server, **limits)
    token = Token.objects.create(user=alice).key
    marker = f"er{os.getpid()}{server[0]}"
    viewers = Viewers(watched.port, video.pk, VIEWERS, marker, RUNS * PER_RUN)
    totals = {"runs": 0, "acknowledged": 0, "refused": 0, "unanswered": 0, "lost": 0, "duplicated": 0}
    out_of_order = reconnects = 0
    try:
        assert viewers.wait_connected() == VIEWERS
        warm_up(viewers, posting.base, token, video.pk, marker)
        expected = viewers.stats()["deliveries"]
        for run in range(RUNS):
            poster = OpenLoopPoster(posting.base, token, video.pk, marker, first_seq=run * PER_RUN)
            poster.start()
            time.sleep(BEFORE)
            separate_redis.stop()
            time.sleep(DOWN)
            separate_redis.start()
            time.sleep(AFTER)
            acknowledged = poster.stop()
            assert poster.unexpected == [], poster.unexpected
            assert poster.seq < (run + 1) * PER_RUN
            expected += len(acknowledged) * VIEWERS
            wait_delivered(viewers, expected)
            figures = viewers.report(acknowledged)
            totals["runs"] += 1
            totals["acknowledged"] += len(acknowledged)
            totals["refused"] += sum(poster.refused.values())
            totals["unanswered"] += poster.unanswered
            totals["lost"] += figures["lost"]
            totals["duplicated"] = figures["duplicated"]  # counted over all runs by the clients
            out_of_order, reconnects = figures["out_of_order"], figures["reconnects"]
            assert figures["lost"] == 0, (run, figures)
            assert figures["duplicated"] == 0, (run, figures)
            assert figures["out_of_order"] == 0, (run, figures)
    finally:
        viewers.close()
        figures = dict(
            server=server,
            clients=VIEWERS,
            viewers=VIEWERS,
            **totals,
            delivered=totals["acknowledged"] * VIEWERS - totals["lost"],
            out_of_order=out_of_order,
            reconnects=reconnects,
        )
        try:
            stats = httpx.get(watched.url("/gateway/stats"), timeout=10).json()
            figures["database_repairs"] = stats.get("database_repairs", 0)
            figures["database_repaired_events"] = stats.get("database_repaired_events", 0)
        except (httpx.HTTPError, ValueError):
            pass
        fault_figures(
            f"Empty Redis restart under open-loop posting ({VIEWERS} SSE viewers on one {server} gateway, "
            f"~{RATE:.0f} comments/s through another, Redis restarted without data once per run)",
            figures,
        )
    assert totals["refused"] > 0  # Redis was away long enough to be noticed by the writes
