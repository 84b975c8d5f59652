"""Reading the endpoint store (channel-layer group membership) in tests, for either layer."""

from django.conf import settings

from dispatcher.publisher import group_name


def layer_settings(kind: str, **config) -> dict:
    """CHANNEL_LAYERS for `kind` ("core" or "pubsub") on the test run's Redis."""
    if kind == "core":
        backend = "channels_redis.core.RedisChannelLayer"
    else:
        backend = "channels_redis.pubsub.RedisPubSubChannelLayer"
    return {"default": {"BACKEND": backend, "CONFIG": {"hosts": [settings.REDIS_URL], "prefix": "lc", **config}}}


def member_count(redis, video_id: int, kind: str | None = None) -> int:
    """How many gateway processes are in the video's group."""
    kind = kind or settings.CHANNEL_LAYER
    if kind == "core":
        return redis.zcard(f"lc:group:{group_name(video_id)}")
    channel = f"lc__group__{group_name(video_id)}"
    counts = {k.decode() if isinstance(k, bytes) else k: v for k, v in redis.pubsub_numsub(channel)}
    return counts.get(channel, 0)


def core_members(redis, video_id: int) -> set[str]:
    return set(redis.zrange(f"lc:group:{group_name(video_id)}", 0, -1))
