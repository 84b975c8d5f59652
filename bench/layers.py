"""Compare channels-redis layers for the dispatcher's pattern.

    python -m bench.layers [--events 2000] [--gateways 2]

One publisher sends a burst of group messages to a group joined by G
"gateway" channels; each gateway receives with one loop. Reports, per layer:
delivered, lost, group_send time per message and receive throughput. Uses an
embedded redis-server of its own (loopback unix socket).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time


async def run_layer(kind: str, url: str, events: int, gateways: int, capacity: int) -> dict:
    if kind == "core":
        from channels_redis.core import RedisChannelLayer

        make = lambda: RedisChannelLayer(hosts=[url], capacity=capacity, prefix=f"b{capacity}")  # noqa: E731
    else:
        from channels_redis.pubsub import RedisPubSubChannelLayer

        make = lambda: RedisPubSubChannelLayer(hosts=[url], prefix="bps")  # noqa: E731
    receivers = [make() for _ in range(gateways)]
    publisher = make()
    channels = []
    for layer in receivers:
        name = await layer.new_channel()
        await layer.group_add("video.1", name)
        channels.append(name)
    got = [0] * gateways
    done = asyncio.Event()

    async def receive(i):
        while True:
            msg = await receivers[i].receive(channels[i])
            if msg.get("end"):
                return
            got[i] += 1

    tasks = [asyncio.create_task(receive(i)) for i in range(gateways)]
    await asyncio.sleep(0.3)
    started = time.perf_counter()
    for n in range(events):
        await publisher.group_send("video.1", {"type": "lc.event", "n": n, "d": "x" * 200})
    sent_time = time.perf_counter() - started
    await asyncio.sleep(1.0)
    for _ in range(3):
        await publisher.group_send("video.1", {"type": "lc.event", "end": True})
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
    except TimeoutError:
        for t in tasks:
            t.cancel()
    total = time.perf_counter() - started
    del done
    for layer in receivers + [publisher]:
        close = getattr(layer, "close_pools", None) or getattr(layer, "flush", None)
        try:
            await close()
        except Exception:  # noqa: BLE001
            pass
    delivered = sum(got)
    return {
        "layer": kind if kind != "core" else f"core(capacity={capacity})",
        "events": events,
        "gateways": gateways,
        "delivered": delivered,
        "lost": events * gateways - delivered,
        "group_send_us": round(sent_time / events * 1e6, 1),
        "seconds": round(total, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--gateways", type=int, default=2)
    args = parser.parse_args()
    from livecomment.server.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis(tempfile.mkdtemp(prefix="layers-"), persist=False)
    server.start()
    try:
        results = []
        for kind, capacity in (("core", 100), ("core", 5000), ("pubsub", 0)):
            results.append(asyncio.run(run_layer(kind, server.url, args.events, args.gateways, capacity)))
        for r in results:
            print(json.dumps(r))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
