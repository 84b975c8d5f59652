"""GET /gateway/stats -- this process's hub counters as JSON (loopback only, as /metrics).

Tests and operators read it to see what one gateway process received: e.g.
that a process with no viewers of a video got no message for it.
"""

import json

from channels.generic.http import AsyncHttpConsumer
from django.conf import settings

from dispatcher import publisher
from dispatcher.hub import current_hub
from livecomment.lib.limits import loopback_client


class GatewayStatsConsumer(AsyncHttpConsumer):
    channel_layer_alias = "__none__"

    async def handle(self, body):
        # The same rule as /metrics: loopback, and no outside client behind a local proxy.
        if not settings.GATEWAY_STATS_PUBLIC and not loopback_client(self.scope):
            await self.send_response(
                403,
                b'{"error":{"code":"forbidden","message":"loopback only"}}',
                headers=[(b"content-type", b"application/json")],
            )
            return
        hub = current_hub()
        data = hub.snapshot() if hub is not None else {"channel": None, "videos": {}, "received_by_video": {}}
        data["published"] = dict(publisher.stats)
        await self.send_response(200, json.dumps(data).encode(), headers=[(b"content-type", b"application/json")])
