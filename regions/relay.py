"""Several regions, "write locally, broadcast": the relay and the ingest loop.

Each region (settings.REGION) has its own database, Redis and gateways. What a
region accepts -- comments, removals/restores/approvals, bans and lifts,
video state and settings -- its write path (comments/services/) also notes
on a region stream, `region:events` (comments/hotstore.py: append_region),
inside the same database transaction. There is one region stream per Redis
host of the hot store (the video's own host; site-wide changes on the first),
so losing a host stops only its videos; each is an "origin stream" named
"<region>/<host index>", e.g. "east/0".

    region east                                   region west
    services   ── region:events ── Relay ──>  relay:{east/0}:inbox     (west's Redis)
                   (each host)     (in east)   relay:{east/0}:position
                                                   │ ingest loop (in west)
                                                   ▼
                                  ingest.ingest_remote_event(): west's database,
                                  west's video stream, dispatcher.publish in west

* The relay runs in the origin region (it reads the origin's database to
  check that each change committed) and needs only the target's Redis URL.
* It copies entries to the target's inbox with their origin IDs, in one Lua
  script that also moves the origin stream's position there: a relay killed
  mid-batch, a restarted relay and two relays at once write each entry once.
* The ingest loop runs in the target region and applies the inboxes through
  the target's own write path. The last entry applied per origin stream is
  kept in the target's database (regions.IngestPosition), in the same
  transaction as the change: each change is applied exactly once, in the
  order its origin accepted it.
* Changes ingested from elsewhere are never put on a region stream: no echo.
* On a Redis Cluster (REDIS_CLUSTER_URL) the region stream is one key for the
  whole cluster, one origin stream "<region>/0", read through the cluster
  client, and so are the inboxes here. A target given by the URL of one of
  its cluster's nodes is written through a cluster client (detected with
  INFO cluster).

`manage.py relay --to west=redis://...` runs both loops (send to west, apply
what others sent here); `manage.py ingest` runs the ingest loop alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from redis.cluster import key_slot
from redis.exceptions import RedisClusterException

from comments import cursors
from comments.hotstore import REGION_STREAM
from comments.models import Comment, ModerationAction
from livecomment.lib import redis_client
from livecomment.lib.errors import Unavailable
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS, ClusterUnavailable, SyncCluster
from regions import ingest

log = logging.getLogger("livecomment.regions")

# This region's Redis or database is away: wait and try the step again.
TRANSIENT_ERRORS = (*UNAVAILABLE_ERRORS, Unavailable, DatabaseError)

ORIGINS_KEY = "relay:origins"  # SET: origin streams that relay to this region


def inbox_key(stream: str) -> str:
    return f"relay:{{{stream}}}:inbox"


def position_key(stream: str) -> str:
    return f"relay:{{{stream}}}:position"


def stream_name(region: str, host_index: int) -> str:
    return f"{region}/{host_index}"


def region_of(stream: str) -> str:
    return stream.rsplit("/", 1)[0]


# Copies a batch of an origin stream's entries into the target's inbox for
# that stream, keeping their IDs, and moves the stream's position -- in one
# step (a script runs alone), so concurrent or repeated relays never write an
# entry twice: an ID at or before the position, or one the inbox already
# passed (XADD refuses IDs <= its last), is skipped.
# KEYS: position, inbox, origins set (not on a cluster target: it is in
#       another slot there, and the relay adds to it before the script runs)
# ARGV: origin stream, advance-to ID ('' = none), the position the relay
#       believes the target has, then (id, t, v, d) per entry
# Returns {new position, entries written}, or {'lost', 0} when the target has
# no position although it had one (its Redis came back empty).
_DELIVER = """
local function after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  if am ~= bm then return am > bm end
  return as > bs
end
local pos = redis.call('GET', KEYS[1])
if not pos then
  if ARGV[3] ~= '0-0' then return {'lost', 0} end
  pos = '0-0'
end
local start = pos
local written = 0
for i = 4, #ARGV, 4 do
  local id = ARGV[i]
  if after(id, pos) then
    local r = redis.pcall('XADD', KEYS[2], id, 't', ARGV[i+1], 'v', ARGV[i+2], 'd', ARGV[i+3])
    if type(r) ~= 'table' or not r.err then written = written + 1 end
    pos = id
  end
end
if ARGV[2] ~= '' and after(ARGV[2], pos) then pos = ARGV[2] end
if pos ~= start then redis.call('SET', KEYS[1], pos) end
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[1]) end
return {pos, written}
"""


@dataclass
class Target:
    """Another region this relay sends to."""

    name: str
    url: str
    down_since: float | None = None
    retry_at: float = 0.0
    _client: redis.Redis | SyncCluster | None = field(default=None, repr=False)

    @property
    def client(self) -> redis.Redis | SyncCluster:
        if self._client is None:
            options = {"socket_timeout": 5, "socket_connect_timeout": 2, "decode_responses": True}
            client = redis.Redis.from_url(self.url, **options)
            if self.url.startswith(("redis://", "rediss://")) and client.info("cluster").get("cluster_enabled"):
                client.close()
                try:
                    client = SyncCluster.from_url(self.url, require_full_coverage=False, **options)
                except RedisClusterException as exc:
                    raise ClusterUnavailable(f"{self.url}: {exc}") from exc
            self._client = client
        return self._client

    @property
    def is_cluster(self) -> bool:
        return isinstance(self.client, SyncCluster)


# Lane.local_url of this region's Redis Cluster (REDIS_CLUSTER_URL).
CLUSTER = "cluster"


def local_client(url: str):
    """This region's Redis host `url`, or (CLUSTER) its cluster."""
    return redis_client.cluster_client() if url == CLUSTER else redis_client.sync_client(url)


@dataclass
class Lane:
    """One of this region's streams (one per Redis host) on its way to one target."""

    target: Target
    stream: str  # "<this region>/<host index>"
    local_url: str  # or CLUSTER
    position: str | None = None  # the last entry the target has, as it said; None: ask it

    @property
    def local(self):
        return local_client(self.local_url)


class Relay:
    """One process's relay (to `targets`) and/or ingest loop, one step at a time.

    `run_once()` does one bounded step and says how much it did; `run()` loops
    until `stop()` (the management commands wire SIGTERM/SIGINT to it), always
    finishing the current step. Nothing is kept only in memory: positions live
    in the targets' Redis and in this region's database, so a relay can be
    killed at any point and started again.
    """

    def __init__(
        self,
        targets: list[tuple[str, str]] = (),
        ingest: bool = True,
        batch: int = 500,
        in_flight_seconds: float = 10.0,
        block_ms: int = 500,
        retry_seconds: float = 1.0,
    ):
        self.region = settings.REGION
        for name, _url in targets:
            if name == self.region:
                raise ValueError(f"--to {name}: that is this region (REGION={self.region}); a relay sends elsewhere")
        self.targets = [Target(name, url) for name, url in targets]
        hosts = [CLUSTER] if redis_client.cluster_mode() else redis_client.shard_urls()
        self.lanes = [
            Lane(target, stream_name(self.region, i), url) for target in self.targets for i, url in enumerate(hosts)
        ]
        self.ingest = ingest
        self.batch = batch
        self.in_flight_seconds = in_flight_seconds
        self.block_ms = block_ms
        self.retry_seconds = retry_seconds
        self.stats: Counter = Counter()
        self._stopping = False
        self._waiting_on_commit = False  # an entry at a lane's head has not committed yet
        self._committed: dict[tuple[str, str], bool] = {}  # (stream, entry) -> committed (cache)
        self._applied: dict[str, str] = {}  # origin stream -> last entry applied here (hint; the database decides)
        self._local_down: set[str] = set()  # this region's hosts that did not answer in this step

    # -- control ---------------------------------------------------------------

    def stop(self, *_args) -> None:
        self._stopping = True

    @property
    def stopping(self) -> bool:
        return self._stopping

    def run(self) -> None:
        failing = False
        while not self._stopping:
            try:
                if not self.run_once() and not self._stopping:
                    self.wait()
            except TRANSIENT_ERRORS as exc:
                if not failing:
                    log.warning("this region's Redis or database is unavailable (%s); retrying", exc)
                failing = True
                self._sleep(self.retry_seconds)
                continue
            except Exception:  # a bad step must not end the relay
                log.exception("relay step failed; retrying")
                self._sleep(self.retry_seconds)
                continue
            if failing:
                log.info("this region's Redis and database answer again")
                failing = False

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, seconds))

    def run_once(self) -> int:
        """Send one batch of each of this region's streams to each reachable
        target, apply one batch of each inbox here. Returns how many entries
        were sent or applied."""
        close_old_connections()
        done = 0
        self._waiting_on_commit = False
        self._local_down.clear()
        for lane in self.lanes:
            done += self._send(lane)
        if self.ingest:
            done += self.ingest_once()
        return done

    def wait(self) -> None:
        """Block until there is something new to send or to apply (or a short timeout)."""
        if self._waiting_on_commit:
            time.sleep(0.01)  # a transaction is about to commit: look again soon
            return
        now = time.monotonic()
        by_host: dict[str, dict[str, str]] = {}
        for lane in self.lanes:
            if lane.position is not None and lane.target.retry_at <= now and lane.local_url not in self._local_down:
                streams = by_host.setdefault(lane.local_url, {})
                current = streams.get(REGION_STREAM)
                if current is None or cursors.compare(lane.position, current) < 0:
                    streams[REGION_STREAM] = lane.position
        if self.ingest:
            inboxes = by_host.setdefault(CLUSTER if redis_client.cluster_mode() else settings.REDIS_URL, {})
            for stream in self._origins():
                inboxes[inbox_key(stream)] = self._applied_position(stream)
        timeout = self.block_ms
        retrying = [t.retry_at for t in self.targets if t.retry_at > now]
        if retrying:
            timeout = max(1, min(timeout, int((min(retrying) - now) * 1000)))
        # One read names keys of one host; on a cluster, of one slot.
        reads = [((url, None), streams) for url, streams in by_host.items() if streams and url != CLUSTER]
        by_slot: dict[int, dict[str, str]] = {}
        for key, after in by_host.get(CLUSTER, {}).items():
            by_slot.setdefault(key_slot(key.encode()), {})[key] = after
        reads += [((CLUSTER, slot), streams) for slot, streams in by_slot.items()]
        if not reads:
            self._sleep(timeout / 1000)
        elif len(reads) == 1:
            (((url, _slot), streams),) = reads
            local_client(url).xread(streams, count=1, block=timeout)
        else:
            # One blocking read per host would be one thread per host; a short
            # block on each in turn costs an idle relay a few reads a second.
            deadline = time.monotonic() + timeout / 1000
            while not self._stopping and time.monotonic() < deadline:
                for (url, _slot), streams in reads:
                    if local_client(url).xread(streams, count=1, block=max(1, 20 // len(reads))):
                        return

    # -- sending (runs in the origin region) ----------------------------------------

    def _send(self, lane: Lane) -> int:
        target = lane.target
        if target.retry_at > time.monotonic() or lane.local_url in self._local_down:
            return 0
        fresh = lane.position is None
        try:
            if fresh:
                lane.position = target.client.get(position_key(lane.stream)) or cursors.ZERO
                target.client.sadd(ORIGINS_KEY, lane.stream)  # its ingest loop starts watching our inbox
                log.info("relay %s to %s: starting after %s", lane.stream, target.name, lane.position)
        except UNAVAILABLE_ERRORS as exc:
            self._down(target, exc)
            return 0
        try:
            entries = lane.local.xrange(REGION_STREAM, f"({lane.position}", "+", count=self.batch)
            if fresh and entries:
                self._check_gap(lane, entries[0][0])
        except UNAVAILABLE_ERRORS as exc:
            log.warning("relay %s: this region's Redis host does not answer (%s)", lane.stream, exc)
            self._local_down.add(lane.local_url)
            return 0
        if not entries:
            self._up(target)
            return 0
        ready, advance_to = self._committed_prefix(lane.stream, entries)
        if not ready and advance_to is None:
            self._up(target)
            return 0
        args: list[str] = [lane.stream, advance_to or "", lane.position]
        for entry_id, fields in ready:
            args += [entry_id, fields.get("t", ""), fields.get("v", ""), fields.get("d", "{}")]
        try:
            keys = [position_key(lane.stream), inbox_key(lane.stream)]
            if target.is_cluster:
                target.client.sadd(ORIGINS_KEY, lane.stream)  # first: its ingest loop must know the inbox
            else:
                keys.append(ORIGINS_KEY)
            position, written = redis_client.run_script(target.client, _DELIVER, keys, args)
        except UNAVAILABLE_ERRORS as exc:
            self._down(target, exc)
            return 0
        self._up(target)
        if position == "lost":
            log.warning(
                "relay %s to %s: it lost its position (its Redis restarted empty?); sending again from the "
                "start of this region's stream (what it applied already is skipped there)",
                lane.stream,
                target.name,
            )
            lane.position = cursors.ZERO
            return 1
        moved = cursors.compare(position, lane.position) > 0
        lane.position = position
        self.stats[f"sent:{target.name}"] += int(written)
        if written:
            log.debug("relay %s to %s: %d entries, now at %s", lane.stream, target.name, written, position)
        return int(written) or int(moved)

    def _up(self, target: Target) -> None:
        if target.down_since is not None:
            log.info("relay to %s: reachable again after %.1f s", target.name, time.monotonic() - target.down_since)
        target.down_since = None
        target.retry_at = 0.0

    def _down(self, target: Target, exc: BaseException) -> None:
        if target.down_since is None:
            log.warning("relay to %s: unreachable (%s); retrying every %.1f s", target.name, exc, self.retry_seconds)
            target.down_since = time.monotonic()
        for lane in self.lanes:
            if lane.target is target:
                lane.position = None  # ask it again when it is back (it may have lost data)
        target._client = None
        target.retry_at = time.monotonic() + self.retry_seconds

    def _check_gap(self, lane: Lane, first_after: str) -> None:
        """The target's position fell out of this region's stream: what was
        trimmed in between never reaches it (REGION_STREAM_MAXLEN too small)."""
        if lane.position == cursors.ZERO:
            return
        head = lane.local.xrange(REGION_STREAM, "-", "+", count=1)
        if head and head[0][0] == first_after and not lane.local.xrange(REGION_STREAM, lane.position, lane.position):
            log.error(
                "relay %s to %s: its position %s is older than this region's stream (starts at %s); "
                "changes trimmed in between are not relayed (raise REGION_STREAM_MAXLEN)",
                lane.stream,
                lane.target.name,
                lane.position,
                first_after,
            )
            self.stats["gaps"] += 1

    def _committed_prefix(self, stream: str, entries: list) -> tuple[list, str | None]:
        """The entries whose database transaction committed, up to the first one
        still in flight; and the position to move to past abandoned entries (a
        transaction that never committed: its process died, or the commit failed
        before the entry could be deleted)."""
        unknown = [(i, f) for i, f in entries if (stream, i) not in self._committed]
        if unknown:
            # Only "committed" is final; an entry in flight is asked about again.
            self._committed.update(((stream, i), True) for i, ok in self._check_committed(unknown).items() if ok)
        if len(self._committed) > 20_000:
            self._committed = dict(list(self._committed.items())[-10_000:])
        ready: list = []
        advance_to = None
        now_ms = time.time() * 1000
        for entry_id, fields in entries:
            if self._committed.get((stream, entry_id)):
                ready.append((entry_id, fields))
                advance_to = None
                continue
            age = now_ms - cursors.parse(entry_id)[0]
            if age < self.in_flight_seconds * 1000:
                self._waiting_on_commit = True
                break
            log.warning("region entry %s %s (%s) never committed here; not relayed", stream, entry_id, fields.get("t"))
            self.stats["abandoned"] += 1
            advance_to = entry_id
        return ready, advance_to

    @staticmethod
    def _check_committed(entries: list) -> dict[str, bool]:
        comment_ids = {int(f["c"]) for _i, f in entries if f.get("c")}
        audit_ids = {int(f["m"]) for _i, f in entries if f.get("m")}
        comments = (
            {
                pk: (position, status_position)
                for pk, position, status_position in Comment.objects.filter(pk__in=comment_ids).values_list(
                    "pk", "position", "status_position"
                )
            }
            if comment_ids
            else {}
        )
        audits = (
            set(ModerationAction.objects.filter(pk__in=audit_ids).values_list("pk", flat=True)) if audit_ids else set()
        )
        found = {}
        for entry_id, f in entries:
            kind = f.get("t")
            if f.get("m"):
                found[entry_id] = int(f["m"]) in audits
            elif kind == "comment" and f.get("c"):
                row = comments.get(int(f["c"]))
                found[entry_id] = row is not None and row[0] is not None
            elif kind == "status" and f.get("c") and f.get("p"):
                row = comments.get(int(f["c"]))
                # Committed when the row's latest status change is this one or a later one.
                found[entry_id] = row is not None and row[1] is not None and row[1] >= int(f["p"])
            else:
                found[entry_id] = True  # nothing to check
        return found

    # -- applying (runs in the target region) ---------------------------------------

    def _origins(self) -> list[str]:
        members = redis_client.site_client().smembers(ORIGINS_KEY)
        return sorted(s for s in members if region_of(s) != self.region)

    def _applied_position(self, stream: str) -> str:
        position = self._applied.get(stream)
        if position is None:
            from regions.models import IngestPosition

            mark = IngestPosition.objects.filter(origin=stream).values_list("position", flat=True).first()
            position = cursors.from_position(mark) if mark else cursors.ZERO
            self._applied[stream] = position
        return position

    def ingest_once(self) -> int:
        """Apply the next batch of every inbox here. Returns how many were applied."""
        local = redis_client.site_client()
        done = 0
        for stream in self._origins():
            after = self._applied_position(stream)
            entries = local.xrange(inbox_key(stream), f"({after}", "+", count=self.batch)
            for entry_id, fields in entries:
                if self._stopping:
                    break
                video = fields.get("v")
                try:
                    data = json.loads(fields.get("d") or "{}")
                except ValueError:
                    data = {}
                outcome = ingest.ingest_remote_event(
                    region_of(stream),
                    entry_id,
                    fields.get("t", ""),
                    int(video) if video else None,
                    data,
                    stream=stream,
                )
                self.stats[outcome.split(":")[0]] += 1
                self._applied[stream] = entry_id
                done += 1
            if entries:
                # What is applied (here or by another ingest loop) is no longer needed.
                local.xtrim(inbox_key(stream), minid=self._applied[stream], approximate=False)
        return done
