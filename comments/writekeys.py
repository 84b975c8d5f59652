"""The write path's short-lived Redis keys: Idempotency-Key, duplicate text and slow mode.

    idem:{V}:U:KEY     STRING  Idempotency-Key of user U -> comment id ("" while
                               the first request is in flight); a repeat with
                               another body is told apart by the comment's
                               stored text (services/posting.py), not here
    dup:{V}:U:SHA      STRING  same text from the same user, short window
    slow:{V}:U         STRING  slow mode: set while user U must wait

The `{<video id>}` hash tag keeps them in the video's cluster slot, beside its
stream (comments/hotstore.py), so every script here names one slot only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from django.conf import settings

from livecomment.lib import redis_client


def idem_key(video_id: int, user_id: int, key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"idem:{{{video_id}}}:{user_id}:{digest}"


def dup_key(video_id: int, user_id: int, text: str) -> str:
    digest = hashlib.sha256(text.casefold().encode("utf-8")).hexdigest()[:32]
    return f"dup:{{{video_id}}}:{user_id}:{digest}"


def slow_key(video_id: int, user_id: int) -> str:
    return f"slow:{{{video_id}}}:{user_id}"


# Checks and takes the write path's keys of several posts in one round trip.
# For each post, in order, one reply:
#   {'ok'}                       all taken
#   {'idem', <comment id or ''>} Idempotency-Key seen before
#   {'dup'}                      same text within the window
#   {'slow', <ttl ms>}           slow mode
# ARGV: idem ttl s, dup ttl s, then per post which keys it has ("i" idem, "d"
#       dup, "s" slow, in the order KEYS holds them, e.g. "ds"; "" for none)
#       and its slow-mode ttl s
# KEYS: every post's keys, post after post.
# Only real keys go in KEYS (all in the video's slot): a placeholder for an
# absent key would hash to another slot, which a Redis Cluster refuses. Posts
# are taken in order, so a second post of the same text in one call is 'dup'.
_RESERVE = """
local function reserve(idem, dup, slow, slow_ttl)
  if idem then
    local seen = redis.call('GET', idem)
    if seen then return {'idem', seen} end
  end
  if slow then
    local ttl = redis.call('PTTL', slow)
    if ttl > 0 then return {'slow', tostring(ttl)} end
  end
  if dup then
    if redis.call('EXISTS', dup) == 1 then return {'dup'} end
    redis.call('SET', dup, '1', 'EX', ARGV[2])
  end
  if slow then redis.call('SET', slow, '1', 'EX', slow_ttl) end
  if idem then redis.call('SET', idem, '', 'EX', ARGV[1]) end
  return {'ok'}
end
local out = {}
local k = 1
for post = 1, (#ARGV - 2) / 2 do
  local which = ARGV[1 + 2 * post]
  local idem, dup, slow
  for i = 1, #which do
    local w = string.sub(which, i, i)
    if w == 'i' then idem = KEYS[k] elseif w == 'd' then dup = KEYS[k] else slow = KEYS[k] end
    k = k + 1
  end
  out[post] = reserve(idem, dup, slow, ARGV[2 + 2 * post])
end
return out
"""


# Scripts run through redis_client.run_script (EVALSHA, else EVAL).
run_script = redis_client.run_script


@dataclass(frozen=True, slots=True)
class Reservation:
    outcome: str  # ok | idem | dup | slow
    comment_id: int | None = None  # for idem: the original comment ("" = in flight)
    retry_after_ms: int = 0
    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Claim:
    """What one post asks reserve_many() to check and take."""

    user_id: int
    text: str
    idempotency_key: str | None
    slow_mode_seconds: int


def reserve(
    video_id: int,
    user_id: int,
    text: str,
    idempotency_key: str | None,
    slow_mode_seconds: int,
) -> Reservation:
    return reserve_many(video_id, [Claim(user_id, text, idempotency_key, slow_mode_seconds)])[0]


def reserve_many(video_id: int, claims: list[Claim]) -> list[Reservation]:
    """The dedup, idempotency and slow-mode checks of several posts to one
    video, in order, in one round trip (nothing at all when none has a key)."""
    window = settings.DUPLICATE_TEXT_WINDOW_SECONDS
    keys: list[str] = []
    args: list = [settings.IDEMPOTENCY_TTL_SECONDS, max(window, 1)]
    taken_by: list[tuple[str, ...]] = []
    for claim in claims:
        taken = {
            "i": idem_key(video_id, claim.user_id, claim.idempotency_key) if claim.idempotency_key else "",
            "d": dup_key(video_id, claim.user_id, claim.text) if window > 0 else "",
            "s": slow_key(video_id, claim.user_id) if claim.slow_mode_seconds > 0 else "",
        }
        taken = {which: key for which, key in taken.items() if key}
        keys.extend(taken.values())
        args += ["".join(taken), max(claim.slow_mode_seconds, 1)]
        taken_by.append(tuple(taken.values()))
    if not keys:
        return [Reservation("ok") for _ in claims]  # nothing to check or take
    replies = run_script(redis_client.for_video(video_id), _RESERVE, keys, args)
    return [_reservation(reply, taken) for reply, taken in zip(replies, taken_by, strict=True)]


def _reservation(reply: list, taken: tuple[str, ...]) -> Reservation:
    outcome = reply[0]
    if outcome == "idem":
        return Reservation("idem", comment_id=int(reply[1]) if reply[1] else None)
    if outcome == "slow":
        return Reservation("slow", retry_after_ms=int(reply[1]))
    if outcome == "dup":
        return Reservation("dup")
    return Reservation("ok", keys=taken)


def release(video_id: int, keys: Iterable[str]) -> None:
    """Give back what reserve() took, after the write failed."""
    keys = list(keys)
    if keys:
        redis_client.for_video(video_id).delete(*keys)


def remember_idempotent(video_id: int, remembered: list[tuple[int, str, int]]) -> None:
    """Point Idempotency-Keys at their comments: (user id, key, comment id)s,
    one round trip."""
    if not remembered:
        return
    pipe = redis_client.for_video(video_id).pipeline(transaction=False)
    for user_id, key, comment_id in remembered:
        pipe.set(idem_key(video_id, user_id, key), str(comment_id), ex=settings.IDEMPOTENCY_TTL_SECONDS)
    pipe.execute()


# Deletes an Idempotency-Key's in-flight marker ('') once it is at least
# ARGV[1] ms old (its TTL, set to the full idempotency TTL, has run down past
# ARGV[2] ms). Returns 1 when the key is gone.
_DROP_ABANDONED = """
local seen = redis.call('GET', KEYS[1])
if not seen then return 1 end
if seen ~= '' then return 0 end
if redis.call('PTTL', KEYS[1]) > tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


def drop_abandoned_idempotency_key(video_id: int, user_id: int, key: str, older_than_seconds: int) -> bool:
    """Free a key whose first request died in flight (reserve() took it, the
    write failed, and Redis was away when the reservation was to be released)."""
    max_pttl = (settings.IDEMPOTENCY_TTL_SECONDS - older_than_seconds) * 1000
    result = redis_client.for_video(video_id).eval(
        _DROP_ABANDONED, 1, idem_key(video_id, user_id, key), str(older_than_seconds * 1000), str(max_pttl)
    )
    return cast(int, result) == 1  # the script returns a number, not the str redis-py's eval() is typed as
