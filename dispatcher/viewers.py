"""Viewer counts: each process reports its local viewers per video in Redis; totals are summed over live gateways."""

from __future__ import annotations

import logging
import time
from typing import cast

from django.conf import settings

from dispatcher.frames import Frame
from dispatcher.writer import BurstWriter
from livecomment.lib import redis_client

log = logging.getLogger(__name__)


class ViewerCounts(BurstWriter):
    async def _report_viewers(self) -> None:
        """Publish this process's viewer counts; send totals that changed (at most every interval)."""
        if not self.videos:
            return
        now = int(time.time())
        stale = now - settings.REALTIME_VIEWERS_TTL
        for video_id, sub in list(self.videos.items()):
            local = sum(1 for c in sub.connections if c.viewer)
            client = redis_client.async_for_video(video_id)
            key = viewers_key(video_id)
            try:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.hset(key, self.channel_name, f"{local}:{now}")
                    pipe.expire(key, settings.REALTIME_VIEWERS_TTL * 2)
                    pipe.hgetall(key)
                    _, _, counts = await pipe.execute()
            except redis_client.UNAVAILABLE_ERRORS:
                continue  # its Redis host is away: the other videos' counts go on
            total = _sum_counts(counts, stale)
            if total != sub.viewers_sent:
                sub.viewers_sent = total
                sub.viewers_frame = Frame("viewers", "", '{"count":%d}' % total)
                self._fan_out(sub, sub.viewers_frame)


def viewers_key(video_id: int) -> str:
    return f"viewers:{{{video_id}}}"


def _sum_counts(counts: dict, stale_before: int) -> int:
    total = 0
    for value in counts.values():
        count, _, stamp = value.partition(":")
        try:
            if int(stamp) >= stale_before:
                total += int(count)
        except ValueError:
            continue
    return total


def viewer_count(video_id: int) -> int:
    """Total viewers of a video over all gateways (sync, for pages and the API)."""
    try:
        counts = cast("dict[str, str]", redis_client.for_video(video_id).hgetall(viewers_key(video_id)))
    except redis_client.UNAVAILABLE_ERRORS:
        return 0
    return _sum_counts(counts, int(time.time()) - settings.REALTIME_VIEWERS_TTL)
