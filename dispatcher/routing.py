"""ASGI routes of the real-time endpoints (livecomment/routing.py mounts them)."""

from django.urls import re_path

from dispatcher.sse import StreamConsumer
from dispatcher.stats import GatewayStatsConsumer
from dispatcher.ws import VideoSocketConsumer

http_routes = [
    re_path(r"^api/v1/videos/(?P<video_id>\d+)/stream/?$", StreamConsumer.as_asgi()),
    re_path(r"^gateway/stats$", GatewayStatsConsumer.as_asgi()),
]

websocket_routes = [
    re_path(r"^ws/videos/(?P<video_id>\d+)/?$", VideoSocketConsumer.as_asgi()),
]
