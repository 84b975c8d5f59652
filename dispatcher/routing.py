"""ASGI routes of the real-time endpoints (livecomment/routing.py mounts them).

Ids go through the URLconf's `<id:>` converter: an id out of range does not
match, so the stream falls through to Django (a JSON 404) and a WebSocket to
`UnknownSocket` (4404).
"""

import json

from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path, re_path

from dispatcher.protocol import CLOSE_CODES
from dispatcher.sse import SSEEndpoint
from dispatcher.stats import GatewayStatsConsumer
from dispatcher.ws import VideoSocketConsumer
from livecomment.lib import converters  # noqa: F401  (registers <id:>)
from livecomment.lib.errors import error_body


class UnknownSocket(AsyncWebsocketConsumer):
    """A WebSocket to no route: refused as the consumer refuses an unknown video
    (accept, an error frame, close 4404), where the router would raise."""

    async def connect(self):
        await self.accept()
        await self.send(text_data=json.dumps({"event": "error", **error_body("not_found", "No such WebSocket route.")}))
        await self.close(code=CLOSE_CODES[404])


http_routes = [
    path("api/v1/videos/<id:video_id>/stream", SSEEndpoint.as_asgi()),
    path("api/v1/videos/<id:video_id>/stream/", SSEEndpoint.as_asgi()),
    re_path(r"^gateway/stats$", GatewayStatsConsumer.as_asgi()),
]

websocket_routes = [
    path("ws/videos/<id:video_id>", VideoSocketConsumer.as_asgi()),
    path("ws/videos/<id:video_id>/", VideoSocketConsumer.as_asgi()),
    # Last: any other path is refused like an unknown video, not with an exception.
    re_path(r"", UnknownSocket.as_asgi()),
]
