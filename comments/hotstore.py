"""The Redis hot store: one stream per video (the write path's short-lived keys: comments/writekeys.py).

Keys (the `{<video id>}` hash tag keeps one video's keys in one cluster slot):

    video:{V}:events   STREAM  every event of the video, ID = its position
                               fields: t (event type), d (JSON data without
                               "cursor"), c (comment id, for comment events),
                               a ("mod" for moderator-only events)
    video:{V}:hidden   SET     ids of comments not visible now (held, removed):
                               readers of the stream skip their comment events
    region:events      STREAM  (one per Redis host, not per video; one for a
                               whole Redis Cluster) what this region accepted on
                               that host, for the relay to other regions
                               (regions/relay.py; `append_region`)

On a Redis Cluster (REDIS_CLUSTER_URL) every script and multi-key command here
names keys of one video only, so they all hash to that video's slot.

Every read returns events as `StreamEvent` tuples in stream order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from django.conf import settings

from comments import cursors
from livecomment.lib import redis_client

MOD_AUDIENCE = "mod"

# Types of stream entries that carry a comment in their "c" field.
COMMENT_TYPES = ("comment", "comment.held")

# A stream entry as redis-py returns it (decode_responses): (ID, fields).
# redis-py types every command's reply as `Awaitable[Any] | Any`, hence the casts.
Entry = tuple[str, dict[str, str]]


def stream_key(video_id: int) -> str:
    return f"video:{{{video_id}}}:events"


def hidden_key(video_id: int) -> str:
    return f"video:{{{video_id}}}:hidden"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    id: str  # stream position
    type: str
    data: str  # JSON object text, "cursor" included
    comment_id: int | None = None
    audience: str = ""
    # True when the event re-announces a comment first appended earlier
    # (approve, restore): its "cursor" is the original position, not `id`.
    reannounce: bool = False

    @property
    def for_moderators_only(self) -> bool:
        return self.audience == MOD_AUDIENCE

    def as_dict(self) -> dict:
        return {"event": self.type, "id": self.id, "data": json.loads(self.data)}


def with_cursor(data_json: str, cursor: str) -> str:
    """Add "cursor" to a JSON object's text without decoding it."""
    if data_json == "{}":
        return '{"cursor":"%s"}' % cursor
    return '{"cursor":"%s",%s' % (cursor, data_json[1:])


def parse_entry(entry_id: str, fields: dict) -> StreamEvent:
    """A stream entry as an event, with \"cursor\" spliced into its data."""
    comment = fields.get("c")
    return StreamEvent(
        id=entry_id,
        type=fields.get("t", ""),
        data=with_cursor(fields.get("d", "{}"), fields.get("k") or entry_id),
        comment_id=int(comment) if comment else None,
        audience=fields.get("a", ""),
        reannounce=bool(fields.get("k")),
    )


# -- writing ------------------------------------------------------------------

# Appends events and returns {ID before the first, ID of each}. Reading the
# previous ID and appending in one script is what lets every event carry
# "prev", which gateways use to notice a lost message (dispatcher/hub.py).
# Entries for the region stream (KEYS[2], when it lives on the same server)
# follow, their IDs after the events'.
# ARGV: MAXLEN of the video's stream, MAXLEN of the region stream, the number
# of events; then per entry the number of its field/value items and the items.
# Scripts run through redis_client.run_script (EVALSHA, else EVAL).
run_script = redis_client.run_script

_APPEND = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local out = {'0-0'}
if last[1] then out[1] = last[1][1] end
local events = tonumber(ARGV[3])
local i = 4
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  if #out <= events then
    out[#out + 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i + 1, i + n))
  else
    out[#out + 1] = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, i + 1, i + n))
  end
  i = i + n + 1
end
return out
"""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its type and data (without "cursor")."""

    type: str
    data: dict
    comment_id: int | None = None
    audience: str = ""
    # The position of the comment an event re-announces (approve, restore).
    original_cursor: str = ""

    def fields(self) -> list[str]:
        fields = ["t", self.type, "d", json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))]
        if self.comment_id is not None:
            fields += ["c", str(self.comment_id)]
        if self.audience:
            fields += ["a", self.audience]
        if self.original_cursor:
            fields += ["k", self.original_cursor]
        return fields


def append(
    video_id: int,
    event_type: str,
    data: dict,
    comment_id: int | None = None,
    audience: str = "",
    original_cursor: str = "",
) -> tuple[str, str]:
    """Append an event to the video's stream; returns (previous ID, new ID).

    `data` is stored without "cursor": the stream ID is the cursor, unless
    `original_cursor` says the event re-announces an older comment.
    """
    return append_with_region(video_id, [NewEvent(event_type, data, comment_id, audience, original_cursor)], [])[0][0]


def append_with_region(
    video_id: int, new_events: list[NewEvent], region_changes: list[tuple[str, dict, dict]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """Append events to the video's stream, in order (one script: all of them
    or none), and the changes for the relay on the region stream
    (append_region's (kind, data, proof) each): in the same script when the
    region stream is on the video's server, else a second round trip.
    Returns ((previous ID, new ID) of each event, the region entries' IDs)."""
    region_maxlen = settings.REGION_STREAM_MAXLEN
    together = bool(region_changes) and bool(region_maxlen) and not redis_client.cluster_mode()
    keys = [stream_key(video_id)]
    args: list = [settings.STREAM_MAXLEN, region_maxlen, len(new_events)]
    for event in new_events:
        fields = event.fields()
        args += [len(fields), *fields]
    if together:
        keys.append(REGION_STREAM)
        for kind, data, proof in region_changes:
            fields = [item for pair in _region_fields(kind, video_id, data, proof).items() for item in pair]
            args += [len(fields), *fields]
    ids = run_script(redis_client.for_video(video_id), _APPEND, keys, args)
    positions = list(zip(ids[: len(new_events)], ids[1 : len(new_events) + 1], strict=True))
    if together:
        return positions, ids[len(new_events) + 1 :]
    return positions, append_region_many(video_id, region_changes)


def delete_entry(video_id: int, *entry_ids: str) -> None:
    """Undo appends whose database transaction did not commit."""
    if entry_ids:
        redis_client.for_video(video_id).xdel(stream_key(video_id), *entry_ids)


def set_hidden(video_id: int, comment_id: int, hidden: bool) -> None:
    client = redis_client.for_video(video_id)
    if hidden:
        client.sadd(hidden_key(video_id), comment_id)
    else:
        client.srem(hidden_key(video_id), comment_id)


REGION_STREAM = "region:events"


def region_client(video_id: int | None):
    """The host of the region stream a change goes on: the video's own host
    (so losing a host affects only its videos), the first one for site-wide
    changes; on a Redis Cluster, the cluster (the stream is one key there)."""
    if redis_client.cluster_mode():
        return redis_client.cluster_client()
    if video_id is None:
        return redis_client.sync_client(redis_client.shard_urls()[0])
    return redis_client.for_video(video_id)


def append_region(kind: str, video_id: int | None, data: dict, **proof) -> str | None:
    """Note a change this region accepted on the region stream the relay tails.

    One stream per Redis host (a single one without REDIS_URLS, and one for a
    whole Redis Cluster: a single key, in the slot of "region:events"),
    whatever the number of videos: the relay reads a key per host. `proof` (c=comment id,
    p=stream position, m=audit row id) lets the relay check that the database
    transaction committed before it sends the change away. Nothing is
    written when REGION_STREAM_MAXLEN is 0 (a single region).
    """
    entries = append_region_many(video_id, [(kind, data, proof)])
    return entries[0] if entries else None


def append_region_many(video_id: int | None, changes: list[tuple[str, dict, dict]]) -> list[str]:
    """append_region() for several changes of one video, (kind, data, proof)
    each, in one round trip; their entry IDs (none in a single region).

    A pipeline, not a script: on a Redis Cluster the region stream lives in
    another slot than the video's keys. An entry written by a pipeline that
    failed half way is harmless: the relay sends nothing whose proof does not
    check out in the database."""
    maxlen = settings.REGION_STREAM_MAXLEN
    if not maxlen or not changes:
        return []
    pipe = region_client(video_id).pipeline(transaction=False)
    for kind, data, proof in changes:
        pipe.xadd(REGION_STREAM, _region_fields(kind, video_id, data, proof), maxlen=maxlen, approximate=True)
    return pipe.execute()


def _region_fields(kind: str, video_id: int | None, data: dict, proof: dict) -> dict[str, str]:
    fields = {
        "t": kind,
        "v": "" if video_id is None else str(video_id),
        "d": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
    }
    fields.update({k: str(v) for k, v in proof.items() if v is not None})
    return fields


def delete_region_entry(video_id: int | None, *entry_ids: str) -> None:
    """Undo append_region() for a transaction that did not commit."""
    if entry_ids:
        region_client(video_id).xdel(REGION_STREAM, *entry_ids)


# -- reading ------------------------------------------------------------------


def _hidden_among(client, video_id: int, events: list[StreamEvent]) -> set[int]:
    ids = sorted({e.comment_id for e in events if e.comment_id is not None})
    if not ids:
        return set()
    flags = client.smismember(hidden_key(video_id), ids)
    return {cid for cid, flag in zip(ids, flags, strict=True) if flag}


def stream_exists(video_id: int) -> bool:
    return bool(redis_client.for_video(video_id).exists(stream_key(video_id)))


def first_id(video_id: int) -> str | None:
    entries = cast("list[Entry]", redis_client.for_video(video_id).xrange(stream_key(video_id), "-", "+", count=1))
    return entries[0][0] if entries else None


def last_id(video_id: int) -> str:
    entries = cast("list[Entry]", redis_client.for_video(video_id).xrevrange(stream_key(video_id), "+", "-", count=1))
    return entries[0][0] if entries else cursors.ZERO


def covers(video_id: int, after: str) -> bool:
    """Does the stream still hold every event after `after`?

    True when its first entry is at or before `after` (nothing after it was
    trimmed). An empty stream covers nothing but the very start.
    """
    first = first_id(video_id)
    return first is not None and cursors.compare(first, after) <= 0


def read_range(video_id: int, after: str, until: str = "+", count: int | None = None) -> list[StreamEvent]:
    """Raw events after `after` (exclusive) up to `until` (inclusive)."""
    client = redis_client.for_video(video_id)
    entries = cast("list[Entry]", client.xrange(stream_key(video_id), f"({after}", until, count=count))
    return [parse_entry(entry_id, fields) for entry_id, fields in entries]


def _pinned_comment_id(event: StreamEvent) -> int | None:
    """The id of the comment a `pin` event carries (None: an announcement)."""
    comment = json.loads(event.data).get("comment") if event.type == "pin" else None
    return comment.get("id") if isinstance(comment, dict) else None


def filter_for_viewer(video_id: int, events: list[StreamEvent], moderator: bool = False) -> list[StreamEvent]:
    """Drop what a viewer must not see: moderator-only events, hidden comments
    (and a `pin` event carrying one: a resume from before a pin whose comment
    was removed since must not get its text back)."""
    if not moderator:
        events = [e for e in events if not e.for_moderators_only]
    pinned = {e.id: _pinned_comment_id(e) for e in events if e.type == "pin"}
    probes = [e for e in events if e.comment_id is not None] + [
        StreamEvent(id=i, type="pin", data="{}", comment_id=c) for i, c in pinned.items() if c is not None
    ]
    hidden = _hidden_among(redis_client.for_video(video_id), video_id, probes)
    return [
        e
        for e in events
        if not (e.type == "comment" and e.comment_id in hidden) and not (e.type == "pin" and pinned[e.id] in hidden)
    ]


def comments_after(video_id: int, after: str, limit: int) -> tuple[list[StreamEvent], bool]:
    """Visible comments after `after`, oldest first, read from the stream.

    Returns (comments, complete): complete is False when the stream does not
    hold the whole range and the caller must ask the database.
    """
    if not covers(video_id, after):
        return [], False
    client = redis_client.for_video(video_id)
    found: list[StreamEvent] = []
    start = after
    batch = max(limit * 2, 50)
    while len(found) < limit:
        entries = cast("list[Entry]", client.xrange(stream_key(video_id), f"({start}", "+", count=batch))
        if not entries:
            break
        events = [parse_entry(i, f) for i, f in entries]
        start = events[-1].id
        candidates = [e for e in events if _is_original_comment(e)]
        hidden = _hidden_among(client, video_id, candidates)
        found.extend(e for e in candidates if e.comment_id not in hidden)
        if len(entries) < batch:
            break
    return found[:limit], True


def comments_before(video_id: int, before: str, limit: int) -> tuple[list[StreamEvent], bool]:
    """Visible comments before `before` (exclusive; "+" = the end), oldest first.

    Complete only when `limit` comments were found in the stream: reaching the
    stream's start says nothing of what was trimmed or lost before it, so the
    caller then asks the database.
    """
    if before == cursors.ZERO:
        return [], True  # nothing comes before the very start
    client = redis_client.for_video(video_id)
    found: list[StreamEvent] = []
    end = before
    batch = max(limit * 2, 50)
    while len(found) < limit:
        entries = cast(
            "list[Entry]", client.xrevrange(stream_key(video_id), "+" if end == "+" else f"({end}", "-", count=batch)
        )
        if not entries:
            break
        events = [parse_entry(i, f) for i, f in entries]
        end = events[-1].id
        candidates = [e for e in events if _is_original_comment(e)]
        hidden = _hidden_among(client, video_id, candidates)
        found.extend(e for e in candidates if e.comment_id not in hidden)
        if len(entries) < batch:
            break
    if len(found) < limit:
        return [], False
    found = found[:limit]
    found.reverse()
    return found, True


def _is_original_comment(event: StreamEvent) -> bool:
    """The entry at which a comment was first appended (its cursor)."""
    return event.type in COMMENT_TYPES and not event.reannounce
