"""Several regions, "write locally, broadcast": the relay and the ingest loop.

Each region (settings.REGION) has its own database, Redis and gateways. What a
region accepts -- comments, removals/restores/approvals, bans and lifts,
video state and settings -- its write path (comments/services.py) also notes
on one region-wide stream, `region:events` (comments/hotstore.py:
append_region), inside the same database transaction.

    region A                                   region B
    services.py ── region:events ── Relay ──>  relay:{A}:inbox  (B's Redis)
                                   (in A)      relay:{A}:position
                                                   │ Ingest (in B)
                                                   ▼
                                  services.ingest_remote_event(): B's database,
                                  B's video stream, dispatcher.publish in B

* The relay runs in the origin region (it reads the origin's database to
  check that each change committed) and needs only the target's Redis URL.
* It copies entries to the target's inbox with their origin IDs, in one Lua
  script that also moves `relay:{A}:position`: a relay killed mid-batch, a
  restarted relay and two relays at once write each entry once.
* The ingest loop runs in the target region and applies the inbox through
  the target's own write path. The last origin event applied is kept in the
  target's database (regions.IngestPosition) in the same transaction as the
  change, so each change is applied exactly once, in the origin's order.
* Changes ingested from elsewhere are never put on `region:events`: no echo.

`manage.py relay --to B=redis://...` runs both loops (send to B, apply what
others sent here); `manage.py ingest` runs the ingest loop alone.
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

from comments import cursors, services
from comments.hotstore import REGION_STREAM
from comments.models import Comment, ModerationAction
from livecomment import redis_client
from livecomment.errors import Unavailable
from livecomment.redis_client import UNAVAILABLE_ERRORS

log = logging.getLogger("livecomment.regions")

# This region's Redis or database is away: wait and try the step again.
TRANSIENT_ERRORS = (*UNAVAILABLE_ERRORS, Unavailable, DatabaseError)

ORIGINS_KEY = "relay:origins"  # SET: regions that have relayed to this one


def inbox_key(origin: str) -> str:
    return f"relay:{{{origin}}}:inbox"


def position_key(origin: str) -> str:
    return f"relay:{{{origin}}}:position"


# Copies a batch of the origin's region-stream entries into the target's inbox
# for that origin, keeping their IDs, and moves the origin's position -- all in
# one step (a script runs alone), so concurrent or repeated relays never write
# an entry twice: an ID at or before the position, or one the inbox already
# passed (XADD refuses IDs <= its last), is skipped.
# KEYS: position, inbox, origins set
# ARGV: origin, advance-to ID ('' = none), the position the relay believes the
#       target has, then (id, t, v, d) per entry
# Returns {new position, entries written}, or {'lost'} when the target has no
# position although it had one (its Redis came back empty): start again from 0-0.
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
redis.call('SADD', KEYS[3], ARGV[1])
return {pos, written}
"""


@dataclass
class Target:
    """Another region this relay sends to."""

    name: str
    url: str
    position: str | None = None  # last entry the target has, as it said; None: ask it
    down_since: float | None = None
    retry_at: float = 0.0
    _client: redis.Redis | None = field(default=None, repr=False)

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self.url, socket_timeout=5, socket_connect_timeout=2, decode_responses=True
            )
        return self._client


class Relay:
    """One process's relay (to `targets`) and/or ingest loop, one step at a time.

    `run_once()` does one bounded step and says how much it did; `run()` loops
    until `stop()` (the management commands wire SIGTERM/SIGINT to it), always
    finishing the current step. Nothing is kept only in memory: positions live
    in the targets' Redis and in this region's database, so a relay can be
    killed at any point and started again.
    """

    def __init__(self, targets: list[tuple[str, str]] = (), ingest: bool = True, batch: int = 500,
                 in_flight_seconds: float = 10.0, block_ms: int = 500, retry_seconds: float = 1.0):
        self.region = settings.REGION
        for name, _url in targets:
            if name == self.region:
                raise ValueError(f"--to {name}: that is this region (REGION={self.region}); a relay sends elsewhere")
        self.targets = [Target(name, url) for name, url in targets]
        self.ingest = ingest
        self.batch = batch
        self.in_flight_seconds = in_flight_seconds
        self.block_ms = block_ms
        self.retry_seconds = retry_seconds
        self.stats: Counter = Counter()
        self._stopping = False
        self._waiting_on_commit = False  # an entry at a target's head has not committed yet
        self._committed: dict[str, bool] = {}  # region-stream entry -> committed (cache)
        self._applied: dict[str, str] = {}  # origin -> last event applied here (hint; the database decides)

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
        """Send one batch to each reachable target, apply one batch of each inbox.
        Returns how many entries were sent or applied."""
        close_old_connections()
        done = 0
        self._waiting_on_commit = False
        for target in self.targets:
            done += self._send(target)
        if self.ingest:
            done += self.ingest_once()
        return done

    def wait(self) -> None:
        """Block until this region has something new to send or to apply (or a short timeout)."""
        if self._waiting_on_commit:
            time.sleep(0.01)  # a transaction is about to commit: look again soon
            return
        streams: dict[str, str] = {}
        now = time.monotonic()
        sending = [t.position for t in self.targets if t.position is not None and t.retry_at <= now]
        if sending:
            streams[REGION_STREAM] = min(sending, key=cursors.to_position)
        if self.ingest:
            for origin in self._origins():
                streams[inbox_key(origin)] = self._applied_position(origin)
        timeout = self.block_ms
        retrying = [t.retry_at for t in self.targets if t.retry_at > now]
        if retrying:
            timeout = max(1, min(timeout, int((min(retrying) - now) * 1000)))
        if not streams:
            self._sleep(timeout / 1000)
            return
        redis_client.sync_client().xread(streams, count=1, block=timeout)

    # -- sending (runs in the origin region) ----------------------------------------

    def _send(self, target: Target) -> int:
        now = time.monotonic()
        if target.retry_at > now:
            return 0
        local = redis_client.sync_client()
        try:
            fresh = target.position is None
            if fresh:
                target.position = target.client.get(position_key(self.region)) or cursors.ZERO
                target.client.sadd(ORIGINS_KEY, self.region)  # its ingest loop starts watching our inbox
                log.info("relay to %s: starting after %s", target.name, target.position)
            entries = local.xrange(REGION_STREAM, f"({target.position}", "+", count=self.batch)
            if not entries:
                self._up(target)
                return 0
            if fresh:
                self._check_gap(target, entries[0][0])
            ready, advance_to = self._committed_prefix(entries)
            if not ready and advance_to is None:
                self._up(target)
                return 0
            args: list[str] = [self.region, advance_to or "", target.position]
            for entry_id, fields in ready:
                args += [entry_id, fields.get("t", ""), fields.get("v", ""), fields.get("d", "{}")]
            script = target.client.register_script(_DELIVER)
            position, written = script(
                keys=[position_key(self.region), inbox_key(self.region), ORIGINS_KEY], args=args
            )
        except UNAVAILABLE_ERRORS as exc:
            self._down(target, exc)
            return 0
        self._up(target)
        if position == "lost":
            log.warning("relay to %s: it lost its position (its Redis restarted empty?); sending again from the start "
                        "of this region's stream (what it applied already is skipped there)", target.name)
            target.position = cursors.ZERO
            return 1
        moved = cursors.compare(position, target.position) > 0
        target.position = position
        self.stats[f"sent:{target.name}"] += int(written)
        if written:
            log.debug("relay to %s: %d entries, now at %s", target.name, written, position)
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
        target.position = None  # ask it again when it is back (it may have lost data)
        target._client = None
        target.retry_at = time.monotonic() + self.retry_seconds

    def _check_gap(self, target: Target, first_after: str) -> None:
        """The target's position fell out of this region's stream: what was
        trimmed in between never reaches it (REGION_STREAM_MAXLEN too small)."""
        if target.position == cursors.ZERO:
            return
        local = redis_client.sync_client()
        head = local.xrange(REGION_STREAM, "-", "+", count=1)
        if head and head[0][0] == first_after and not local.xrange(REGION_STREAM, target.position, target.position):
            log.error(
                "relay to %s: its position %s is older than this region's stream (starts at %s); "
                "changes trimmed in between are not relayed (raise REGION_STREAM_MAXLEN)",
                target.name, target.position, first_after,
            )
            self.stats["gaps"] += 1

    def _committed_prefix(self, entries: list) -> tuple[list, str | None]:
        """The entries whose database transaction committed, up to the first one
        still in flight; and the position to move to past abandoned entries (a
        transaction that never committed: its process died, or the commit failed
        before the entry could be deleted)."""
        unknown = [(i, f) for i, f in entries if i not in self._committed]
        if unknown:
            # Only "committed" is final; an entry in flight is asked about again.
            self._committed.update((i, True) for i, ok in self._check_committed(unknown).items() if ok)
        if len(self._committed) > 20_000:
            self._committed = dict(list(self._committed.items())[-10_000:])
        ready: list = []
        advance_to = None
        now_ms = time.time() * 1000
        for entry_id, fields in entries:
            if self._committed.get(entry_id):
                ready.append((entry_id, fields))
                advance_to = None
                continue
            age = now_ms - cursors.parse(entry_id)[0]
            if age < self.in_flight_seconds * 1000:
                self._waiting_on_commit = True
                break
            log.warning("region entry %s (%s) never committed here; not relayed", entry_id, fields.get("t"))
            self.stats["abandoned"] += 1
            advance_to = entry_id
        return ready, advance_to

    @staticmethod
    def _check_committed(entries: list) -> dict[str, bool]:
        comment_ids = {int(f["c"]) for _i, f in entries if f.get("c")}
        audit_ids = {int(f["m"]) for _i, f in entries if f.get("m")}
        comments = {
            pk: (position, status_position)
            for pk, position, status_position in Comment.objects.filter(pk__in=comment_ids).values_list(
                "pk", "position", "status_position"
            )
        } if comment_ids else {}
        audits = set(ModerationAction.objects.filter(pk__in=audit_ids).values_list("pk", flat=True)) if audit_ids else set()
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
        return sorted(o for o in redis_client.sync_client().smembers(ORIGINS_KEY) if o != self.region)

    def _applied_position(self, origin: str) -> str:
        position = self._applied.get(origin)
        if position is None:
            from regions.models import IngestPosition

            mark = IngestPosition.objects.filter(origin=origin).values_list("position", flat=True).first()
            position = cursors.from_position(mark) if mark else cursors.ZERO
            self._applied[origin] = position
        return position

    def ingest_once(self) -> int:
        """Apply the next batch of every origin's inbox here. Returns how many were applied."""
        local = redis_client.sync_client()
        done = 0
        for origin in self._origins():
            after = self._applied_position(origin)
            entries = local.xrange(inbox_key(origin), f"({after}", "+", count=self.batch)
            for entry_id, fields in entries:
                if self._stopping:
                    break
                video = fields.get("v")
                try:
                    data = json.loads(fields.get("d") or "{}")
                except ValueError:
                    data = {}
                outcome = services.ingest_remote_event(
                    origin, entry_id, fields.get("t", ""), int(video) if video else None, data
                )
                self.stats[outcome.split(":")[0]] += 1
                self._applied[origin] = entry_id
                done += 1
            if entries:
                # What is applied (here or by another ingest loop) is no longer needed.
                local.xtrim(inbox_key(origin), minid=self._applied[origin], approximate=False)
        return done
