"""dispatcher.publish(): the one entry point that sends an event to viewers.

Called only by the comments app's write path, after the
database commit. It sends one channel-layer message to group `video.<id>`,
whose members are the gateway processes that have viewers of that video (the
endpoint store, see dispatcher/hub.py) -- one message per subscribed
gateway process, never one per viewer. It keeps no state, so any process can
publish: a web request, a management command, a worker.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

log = logging.getLogger(__name__)

# Messages this process handed to the channel layer (one per group_send).
stats: Counter = Counter()

MESSAGE_TYPE = "lc.event"


class Event(TypedDict, total=False):
    type: str  # comment | comment.removed | comment.held | video.state | ...
    id: str  # stream position
    prev: str  # position of the event before it in this video's stream
    data: dict  # the payload clients receive
    audience: str  # "" for everyone, "mod" for moderators only


def group_name(video_id: int) -> str:
    return f"video.{video_id}"


def message_for(video_id: int, event: Event) -> dict:
    import json

    return {
        "type": MESSAGE_TYPE,
        "v": video_id,
        "e": event["type"],
        "id": event.get("id", ""),
        "prev": event.get("prev", ""),
        # Encoded once here; gateways splice it into frames without decoding.
        "d": json.dumps(event["data"], ensure_ascii=False, separators=(",", ":")),
        "a": event.get("audience", ""),
    }


def _pubsub_channel(layer, group: str) -> str | None:
    """The Redis channel the pub/sub layer publishes a group's messages on
    (channels_redis.pubsub: "<prefix>__group__<group>"), or None for other layers."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    prefix = layer._kwargs.get("prefix", "asgi")
    return f"{prefix}__group__{group}"


def publish(video_id: int, *events: Event) -> None:
    """Send `events` (in stream order) to every gateway with viewers of `video_id`.

    From synchronous code (the write path runs in worker threads) the
    pub/sub layer's group_send is one PUBLISH: do it with the synchronous
    Redis client, in the layer's own wire format, instead of hopping into an
    event loop (async_to_sync) for it. Several events of one write (a batch
    of comments) go out in one round trip, one PUBLISH each.

    A failure here never undoes the write: the events are in the stream, and
    gateways repair the gap when the next event arrives; clients resume.
    """
    if not events:
        return
    layer = get_channel_layer()
    group = group_name(video_id)
    try:
        channel = _pubsub_channel(layer, group)
        if channel is not None:
            from channels_redis.utils import _consistent_hash

            from livecomment.lib import redis_client

            hosts = layer._kwargs.get("hosts") or [settings.REDIS_URL]
            host = hosts[_consistent_hash(channel, len(hosts))]  # the layer's own shard choice
            url = host if isinstance(host, str) else host.get("address")
            client = redis_client.sync_client(url)
            if len(events) == 1:
                client.publish(channel, layer.serialize(message_for(video_id, events[0])))
            else:
                pipe = client.pipeline(transaction=False)
                for event in events:
                    pipe.publish(channel, layer.serialize(message_for(video_id, event)))
                pipe.execute()
        else:
            for event in events:
                async_to_sync(layer.group_send)(group, message_for(video_id, event))
        stats["group_sends"] += len(events)
    except Exception as exc:  # noqa: BLE001 - delivery is repaired from the stream
        first, last = events[0], events[-1]
        log.warning(
            "publish of %s %s..%s to video %s failed: %r",
            first.get("type"),
            first.get("id"),
            last.get("id"),
            video_id,
            exc,
        )


async def apublish(video_id: int, event: Event) -> None:
    layer = get_channel_layer()
    try:
        await layer.group_send(group_name(video_id), message_for(video_id, event))
        stats["group_sends"] += 1
    except Exception as exc:  # noqa: BLE001
        log.warning("publish of %s %s to video %s failed: %r", event.get("type"), event.get("id"), video_id, exc)
