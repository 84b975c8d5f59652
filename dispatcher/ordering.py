"""Order and gap repair: what a video missed is read from the stream (or the database) and delivered first, in order."""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db.models import Max

from comments import hotstore
from comments.cursors import ZERO, from_position, to_position
from comments.models import Comment
from dispatcher import backlog
from dispatcher.auth import run_sync
from dispatcher.frames import Frame
from dispatcher.subscription import VideoSubscription
from dispatcher.writer import BurstWriter
from livecomment.lib import redis_client

log = logging.getLogger(__name__)

# The tip check leaves an undelivered event at the stream's tip alone while
# it is younger than this (its message is likely queued, not lost).
TIP_GRACE_SECONDS = 1.0

# Rows per database read when a gap is repaired from the database.
REPAIR_PAGE = 500


class GapRepair(BurstWriter):
    async def _repair(self, sub: VideoSubscription, upto: str = "+") -> int:
        """Deliver what was missed after what was last delivered, in order. Caller holds sub.lock.

        From the stream, when it still holds what follows the last delivered
        position; else (it was trimmed, or Redis came back empty) the part it
        no longer holds comes from the database first."""
        client = redis_client.async_for_video(sub.video_id)
        key = hotstore.stream_key(sub.video_id)
        async with client.pipeline(transaction=False) as pipe:
            pipe.xrange(key, "-", "+", count=1)
            pipe.xrange(key, f"({sub.last_id}", upto)
            first, entries = await pipe.execute()
        first_id = first[0][0] if first else None
        repaired = 0
        if first_id is None or to_position(first_id) > sub.last_position:
            repaired = await self._repair_from_database(sub, first_id)
            if first_id is None:  # it may have entries by now
                entries = await client.xrange(key, f"({sub.last_id}", upto)
            else:
                entries = [entry for entry in entries if to_position(entry[0]) > sub.last_position]
        if entries:
            self.stats["gap_repairs"] += 1
            self.stats["repaired_events"] += len(entries)
        for entry_id, fields in entries:
            event = hotstore.parse_entry(entry_id, fields)
            sub.advance(event.id)
            self._fan_out(sub, Frame.from_stream(event))
        return repaired + len(entries)

    async def _repair_from_database(self, sub: VideoSubscription, first_id: str | None) -> int:
        """Deliver the database's events between the last delivered position
        and the stream's first entry, a page at a time. Caller holds sub.lock.

        Built for moderators: `comment.held` frames carry their audience, and
        each connection decides (removed comments are not in it at all). With
        no stream at all the upper bound is the first entry appended since:
        the stream's entries precede their rows' commits, so a committed row
        at or after it is the stream's to deliver."""
        origin = after = sub.last_id
        repaired = 0
        self.stats["database_repairs"] += 1
        while True:
            page = await run_sync(backlog.database_page, sub.video_id, after, first_id, REPAIR_PAGE, True, origin)
            events, next_after = page.events, (page.last_id if page.more else None)
            if first_id is None:
                first_id = await self._first_id(sub.video_id)
                if first_id is not None:
                    bound = to_position(first_id)
                    events = [e for e in events if to_position(e.id) < bound]
                    if next_after is not None and to_position(next_after) >= bound:
                        next_after = None
            for event in events:
                sub.advance(event.id)
                self._fan_out(sub, Frame.from_stream(event))
            repaired += len(events)
            if next_after is None:
                break
            after = next_after
        self.stats["database_repaired_events"] += repaired
        return repaired

    async def _tip(self, video_id: int) -> str:
        client = redis_client.async_for_video(video_id)
        entries = await client.xrevrange(hotstore.stream_key(video_id), "+", "-", count=1)
        return entries[0][0] if entries else ZERO

    async def _first_id(self, video_id: int) -> str | None:
        client = redis_client.async_for_video(video_id)
        entries = await client.xrange(hotstore.stream_key(video_id), "-", "+", count=1)
        return entries[0][0] if entries else None

    async def _check_tips(self) -> None:
        """Repair a lost *last* event (no later message reveals the gap).

        The stream being ahead of what was delivered is normal under load:
        the channel-layer messages are queued and arrive on their own, and
        reading them from the stream as well doubles the work of a hub that
        is already behind. So the stream is read only for an event at the tip
        that is older than TIP_GRACE_SECONDS by its stream ID (the time Redis
        appended it), or that was already at the tip at the previous check
        (whatever the clocks say): a lost last event is repaired at the
        first check after it is a second old, within two intervals at most."""
        now_ms = time.time() * 1000
        grace_ms = min(TIP_GRACE_SECONDS, settings.REALTIME_TIP_CHECK_SECONDS) * 1000
        for video_id, sub in list(self.videos.items()):
            if not sub.joined.done():
                continue
            try:
                tip = await self._tip(video_id)
            except redis_client.UNAVAILABLE_ERRORS:
                continue  # its Redis host is away; the others are checked
            tip_position = to_position(tip)
            if tip_position <= sub.last_position:
                sub.tip_ahead = 0
                continue
            old = now_ms - int(tip.partition("-")[0]) >= grace_ms
            if old or sub.tip_ahead > sub.last_position:
                async with sub.lock:
                    if to_position(tip) > sub.last_position:
                        self.stats["tip_repairs"] += 1
                        await self._repair(sub)
            sub.tip_ahead = tip_position if tip_position > sub.last_position else 0


def database_tip(video_id: int) -> str:
    """The last stream position the database knows for a video (a comment or a status change)."""
    last = Comment.objects.filter(video_id=video_id).aggregate(p=Max("position"), s=Max("status_position"))
    return from_position(max(last["p"] or 0, last["s"] or 0))
