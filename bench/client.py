"""Load-generator worker: one process holding many SSE (and WebSocket) connections.

The orchestrator (bench/fanout.py) starts several of these with
multiprocessing and talks to each over a Pipe. A worker

1. opens its share of connections (bounded concurrency, bounded retries,
   bounded time) and reports how many are up;
2. parses every frame with a minimal SSE / WebSocket parser on raw asyncio
   protocols (uvloop), so the client costs a few microseconds per delivery
   and is not the bottleneck;
3. for every benchmark comment (text ``lcb <run> m<seq> <send time ns>``)
   checks duplicates (by sequence number, per connection) and order (by the
   event id the server sent, per connection) and records the post->receipt
   latency in a log-bucket histogram (1 % wide buckets);
4. on ``report`` returns counts, the histogram and a 100 ms timeline;
5. exits on ``close``, on its parent's disappearance or at its own deadline.

Comments that do not carry this run's marker (the backlog a new SSE
connection gets, heartbeats, viewer counts) are ignored. A connection the
server closes is resumed with Last-Event-ID (SSE) / last_event_id (WebSocket),
at most ``max_reconnects`` times; what it missed counts as lost.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import resource
import time
from array import array

LAT_BUCKETS = 2000  # idx = int(ln(us + 1) * 100): 1 % wide, up to e^20 us (~5.6 days)
TIMELINE_STEP_NS = 100_000_000  # 100 ms
TIMELINE_LEN = 3000  # 300 s


_log = math.log


def lat_bucket(us: int) -> int:
    i = int(_log(us + 1) * 100)
    return i if i < LAT_BUCKETS else LAT_BUCKETS - 1


def bucket_floor_us(i: int) -> float:
    """Lower edge of bucket i in microseconds (the value reported for it)."""
    return math.exp(i / 100) - 1


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def run_loop(coro):
    """Run a coroutine on uvloop when it is installed, else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def cursor_key(idb: bytes):
    """Order key of an event id: '1764000000000-3' -> (1764000000000, 3); '17' -> (17, 0)."""
    a, _, b = idb.partition(b"-")
    try:
        return (int(a), int(b) if b else 0)
    except ValueError:
        return None


class Worker:
    def __init__(self, cfg: dict, pipe):
        self.cfg = cfg
        self.pipe = pipe
        self.host = cfg["host"]
        self.port = cfg["port"]
        self.marker = f"lcb {cfg['run']} ".encode()
        self.mlen = len(self.marker)
        self.nseq = cfg["max_seq"] + 1
        self.deliveries = 0
        self.dups = 0
        self.ooo = 0
        self.invalid = 0
        self.warm_conns = 0
        self.hist = array("Q", bytes(8 * LAT_BUCKETS))
        self.timeline = array("Q", bytes(8 * TIMELINE_LEN))
        self.t0 = 0
        self.max_us = 0
        self.first_ns = 0
        self.last_ns = 0
        self.disconnects = 0
        self.reconnects = 0
        self.conns: list[Conn] = []
        self.closing = False
        self.done: asyncio.Future | None = None

    # -- one benchmark event seen by one connection ------------------------
    def on_event(self, conn: Conn, buf: bytes, p: int, idb: bytes | None, now: int) -> None:
        q = p + self.mlen
        kind = buf[q]
        sp = buf.find(b" ", q)
        try:
            seq = int(buf[q + 1 : sp])
            t = int(buf[sp + 1 : sp + 20])
        except ValueError:
            self.invalid += 1
            return
        if idb is not None:
            conn.last_id = idb
        if kind == 119:  # 'w': warm-up comment, proves the subscription is live
            if not conn.warm:
                conn.warm = 1
                self.warm_conns += 1
            return
        if seq >= self.nseq or seq < 0:
            self.invalid += 1
            return
        got = conn.got
        if got[seq]:
            self.dups += 1
            return
        got[seq] = 1
        key = cursor_key(idb) if idb is not None else (seq, 0)
        if conn.last_key is not None and key is not None and key < conn.last_key:
            self.ooo += 1
        elif key is not None:
            conn.last_key = key
        self.deliveries += 1
        us = (now - t) // 1000
        us = max(us, 0)
        self.hist[lat_bucket(us)] += 1
        self.max_us = max(self.max_us, us)
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now
        if self.t0:
            ti = (now - self.t0) // TIMELINE_STEP_NS
            if 0 <= ti < TIMELINE_LEN:
                self.timeline[ti] += 1

    # -- connection management ----------------------------------------------
    async def open_all(self) -> None:
        loop = asyncio.get_running_loop()
        n = self.cfg["n"]
        n_ws = self.cfg.get("n_ws", 0)
        sem = asyncio.Semaphore(self.cfg.get("connect_concurrency", 64))
        self.conns = [Conn(self, i, ws=i < n_ws) for i in range(n)]
        deadline = loop.time() + self.cfg.get("connect_timeout", 60)

        async def one(conn: Conn):
            for _attempt in range(3):
                if loop.time() > deadline:
                    return
                async with sem:
                    if await conn.connect(timeout=min(15.0, max(0.5, deadline - loop.time()))):
                        return
                await asyncio.sleep(0.2)

        await asyncio.gather(*(one(c) for c in self.conns))

    def connected(self) -> int:
        return sum(1 for c in self.conns if c.open)

    def schedule_reconnect(self, conn: Conn) -> None:
        if self.closing or conn.reconnects >= self.cfg.get("max_reconnects", 3):
            return
        conn.reconnects += 1
        self.reconnects += 1

        async def again():
            await asyncio.sleep(0.05 * conn.reconnects)
            if not self.closing:
                await conn.connect(timeout=10.0)

        asyncio.get_running_loop().create_task(again())

    # -- command loop ------------------------------------------------------------
    def on_command(self) -> None:
        for _ in range(100):  # bounded: handle what is queued now
            try:
                if not self.pipe.poll():
                    return
                msg = self.pipe.recv()
            except (EOFError, OSError):
                self.finish()
                return
            self.handle(msg)

    def handle(self, msg) -> None:
        cmd = msg[0]
        if cmd == "go":
            self.t0 = msg[1]
        elif cmd == "stat":
            self.pipe.send(("stat", self.deliveries, self.warm_conns, self.connected(), self.disconnects))
        elif cmd == "report":
            self.pipe.send(("report", self.report(msg[1])))
        elif cmd == "close":
            self.finish()

    def finish(self) -> None:
        self.closing = True
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def report(self, acked: list[int]) -> dict:
        lost = 0
        extra = 0
        conns_with_loss = 0
        n_acked = len(acked)
        measured = 0
        for c in self.conns:
            if not c.ever_open:
                continue
            measured += 1
            got = c.got
            have = sum(map(got.__getitem__, acked)) if n_acked else 0
            miss = n_acked - have
            lost += miss
            if miss:
                conns_with_loss += 1
            extra += got.count(1) - have
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "connections": measured,
            "open_at_end": self.connected(),
            "ws_connections": sum(1 for c in self.conns if c.ws and c.ever_open),
            "deliveries": self.deliveries,
            "lost": lost,
            "conns_with_loss": conns_with_loss,
            "unacked_delivered": extra,
            "duplicated": self.dups,
            "out_of_order": self.ooo,
            "invalid": self.invalid,
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
            "hist": {i: v for i, v in enumerate(self.hist) if v},
            "timeline": list(self.timeline[: self._timeline_len()]),
            "max_us": self.max_us,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "cpu_s": ru.ru_utime + ru.ru_stime,
            "errors": sorted({c.error for c in self.conns if c.error})[:5],
        }

    def _timeline_len(self) -> int:
        n = TIMELINE_LEN
        while n and not self.timeline[n - 1]:
            n -= 1
        return n

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        await self.open_all()
        self.pipe.send(("connected", self.connected(), len(self.conns) - self.connected()))
        loop.add_reader(self.pipe.fileno(), self.on_command)
        try:
            await asyncio.wait_for(self.done, timeout=self.cfg.get("lifetime", 900))
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(self.pipe.fileno())
            self.closing = True
            for c in self.conns:
                c.close()
            await asyncio.sleep(0.05)


class Conn(asyncio.Protocol):
    """One SSE or WebSocket connection (one object across its reconnects)."""

    def __init__(self, w: Worker, idx: int, ws: bool = False):
        self.w = w
        self.idx = idx
        self.ws = ws
        self.got = bytearray(w.nseq)
        self.last_key = None
        self.last_id: bytes | None = None
        self.warm = 0
        self.reconnects = 0
        self.transport = None
        self.open = False
        self.ever_open = False
        self.error = ""
        self.ready: asyncio.Future | None = None
        self._reset()

    def _reset(self) -> None:
        self.buf = b""
        self.head = b""
        self.headers_done = False
        self.chunked = False
        self.cleft = 0
        self.cskip = 0
        self.cpend = b""

    async def connect(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        self._reset()
        self.ready = loop.create_future()
        try:
            await asyncio.wait_for(loop.create_connection(lambda: self, self.w.host, self.w.port), timeout)
            await asyncio.wait_for(self.ready, timeout)
        except (TimeoutError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            if self.transport is not None:
                self.transport.abort()
            return False
        return self.open

    # -- asyncio.Protocol --------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        cfg = self.w.cfg
        host = f"{self.w.host}:{self.w.port}"
        if self.ws:
            path = cfg["ws_path"]
            if self.last_id:
                path += ("&" if "?" in path else "?") + "last_event_id=" + self.last_id.decode()
            self.ws_key = base64.b64encode(os.urandom(16)).decode()
            req = (
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {self.ws_key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Origin: http://{host}\r\n\r\n"
            )
        else:
            extra = f"Last-Event-ID: {self.last_id.decode()}\r\n" if self.last_id else ""
            req = (
                f"GET {cfg['sse_path']} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
                f"Cache-Control: no-cache\r\n{extra}\r\n"
            )
        transport.write(req.encode())

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        if not self.headers_done:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > 65536:
                    self._fail("response head too long")
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.head = b""
            self.headers_done = True
            status_line, _, rest = head.partition(b"\r\n")
            parts = status_line.split(b" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            expected = 101 if self.ws else 200
            if status != expected:
                self._fail(f"status {status}: {status_line[:80]!r}")
                return
            lower = rest.lower()
            self.chunked = b"transfer-encoding: chunked" in lower
            self.open = True
            self.ever_open = True
            if self.ready is not None and not self.ready.done():
                self.ready.set_result(True)
            if not data:
                return
        if self.ws:
            self._feed_ws(data, now)
        elif self.chunked:
            if not (self.cleft or self.cskip or self.cpend):
                # Fast path: the read is exactly one whole chunk (the usual case).
                eol = data.find(b"\r\n")
                if 0 < eol < 10:
                    try:
                        size = int(data[:eol], 16)
                    except ValueError:
                        size = -1
                    if size > 0 and eol + size + 4 == len(data):
                        self._feed_sse(data[eol + 2 : eol + 2 + size], now)
                        return
            self._feed_sse(self._dechunk(data), now)
        else:
            self._feed_sse(data, now)

    def connection_lost(self, exc) -> None:
        was_open = self.open
        self.open = False
        self.transport = None
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(False)
        if was_open and not self.w.closing:
            self.w.disconnects += 1
            self.w.schedule_reconnect(self)

    def _fail(self, why: str) -> None:
        self.error = why
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(False)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- HTTP/1.1 chunked transfer coding --------------------------------------
    def _dechunk(self, data: bytes) -> bytes:
        if self.cpend:
            data = self.cpend + data
            self.cpend = b""
        out = []
        pos = 0
        n = len(data)
        while pos < n:
            if self.cleft:
                take = min(self.cleft, n - pos)
                out.append(data[pos : pos + take])
                pos += take
                self.cleft -= take
                if not self.cleft:
                    self.cskip = 2
            elif self.cskip:
                take = min(self.cskip, n - pos)
                pos += take
                self.cskip -= take
            else:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    self.cpend = data[pos:]
                    break
                try:
                    size = int(data[pos:eol].split(b";", 1)[0], 16)
                except ValueError:
                    self._fail("bad chunk header")
                    return b""
                pos = eol + 2
                if size == 0:  # last chunk: the server ended the stream
                    break
                self.cleft = size
        return out[0] if len(out) == 1 else b"".join(out)

    # -- text/event-stream ----------------------------------------------------------
    def _feed_sse(self, data: bytes, now: int) -> None:
        """Split complete frames off the buffer; handle the benchmark's comments.

        The hot path of the client (once per delivery), so on_event is inlined
        here and everything is a local.
        """
        buf = self.buf + data if self.buf else data
        w = self.w
        marker = w.marker
        find = buf.find
        start = 0
        while True:
            end = find(b"\n\n", start)
            if end < 0:
                break
            p = find(marker, start, end)
            if p >= 0:
                if buf.startswith(b"id: ", start):
                    idb = buf[start + 4 : find(b"\n", start)]
                else:
                    i = find(b"\nid: ", start, end)
                    idb = buf[i + 5 : find(b"\n", i + 1)] if i >= 0 else None
                q = p + w.mlen
                if buf[q] != 109:  # not 'm': warm-up or foreign, take the general path
                    w.on_event(self, buf, p, idb, now)
                else:
                    sp = find(b" ", q)
                    try:
                        seq = int(buf[q + 1 : sp])
                        t = int(buf[sp + 1 : sp + 20])
                    except ValueError:
                        seq = -1
                        t = now
                    if idb is not None:
                        self.last_id = idb
                    got = self.got
                    if seq < 0 or seq >= w.nseq:
                        w.invalid += 1
                    elif got[seq]:
                        w.dups += 1
                    else:
                        got[seq] = 1
                        if idb is not None:
                            a, _, b = idb.partition(b"-")
                            key = (int(a), int(b) if b else 0) if a.isdigit() else None
                        else:
                            key = (seq, 0)
                        last = self.last_key
                        if key is not None:
                            if last is not None and key < last:
                                w.ooo += 1
                            else:
                                self.last_key = key
                        w.deliveries += 1
                        us = (now - t) // 1000
                        us = max(us, 0)
                        li = int(_log(us + 1) * 100)
                        w.hist[li if li < LAT_BUCKETS else LAT_BUCKETS - 1] += 1
                        w.max_us = max(w.max_us, us)
                        if not w.first_ns:
                            w.first_ns = now
                        w.last_ns = now
                        if w.t0:
                            ti = (now - w.t0) // TIMELINE_STEP_NS
                            if 0 <= ti < TIMELINE_LEN:
                                w.timeline[ti] += 1
            start = end + 2
        if start < len(buf):
            self.buf = buf[start:]
            if len(self.buf) > 1 << 20:
                self._fail("unterminated SSE frame over 1 MiB")
        else:
            self.buf = b""

    # -- WebSocket (RFC 6455, server frames are unmasked) ----------------------------
    def _feed_ws(self, data: bytes, now: int) -> None:
        buf = self.buf + data if self.buf else data
        pos = 0
        n = len(buf)
        w = self.w
        while n - pos >= 2:
            b0 = buf[pos]
            ln = buf[pos + 1] & 0x7F
            hp = pos + 2
            if ln == 126:
                if n - hp < 2:
                    break
                ln = int.from_bytes(buf[hp : hp + 2], "big")
                hp += 2
            elif ln == 127:
                if n - hp < 8:
                    break
                ln = int.from_bytes(buf[hp : hp + 8], "big")
                hp += 8
            if n - hp < ln:
                break
            op = b0 & 0x0F
            if op == 1 or op == 0:
                p = buf.find(w.marker, hp, hp + ln)
                if p >= 0:
                    idb = None
                    try:
                        obj = json.loads(buf[hp : hp + ln])
                        if obj.get("id"):
                            idb = str(obj["id"]).encode()
                    except ValueError:
                        pass
                    w.on_event(self, buf, p, idb, now)
            elif op == 9:  # ping -> pong (client frames must be masked)
                self._ws_send(0xA, buf[hp : hp + ln])
            elif op == 8:
                self._ws_send(0x8, b"")
                if self.transport is not None:
                    self.transport.close()
            pos = hp + ln
        self.buf = buf[pos:] if pos < n else b""

    def _ws_send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or len(payload) > 125:
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


def worker_main(cfg: dict, pipe) -> None:
    """Entry point of a worker process (multiprocessing target)."""
    raise_nofile()
    try:
        run_loop(Worker(cfg, pipe).run())
    finally:
        pipe.close()
