"""GET /metrics -- this gateway process's metrics in Prometheus text format.

Per process: every Daphne/uvicorn worker keeps its own counters and answers
for itself (scrape each worker, or sum over them; docs/OPERATIONS.md). Two
kinds of numbers:

* Read at scrape time from what the real-time path already counts, so the
  hot path pays nothing: the hub's `stats` Counter and its subscriptions
  (dispatcher/hub.py), the publisher's `stats` (dispatcher/publisher.py).
  `HubCollector` turns them into metric families when scraped.
* Counted where they happen, with prometheus_client objects: comments
  accepted / rejected by reason (comments/api.py, dispatcher/ws.py) and
  request latency (livecomment/lib/middleware.py).

Served by an ASGI consumer mounted before Django (livecomment/routing.py):
no thread hop, and it runs on the event loop that owns the hub. Loopback
clients only, unless METRICS_PUBLIC=1.
"""

from __future__ import annotations

import os

from channels.generic.http import AsyncHttpConsumer
from django.conf import settings
from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from livecomment.lib import limits

# No `*_created` series: they double the output and no dashboard here uses them.
disable_created_metrics()

# --- counted where they happen -------------------------------------------------

COMMENTS_ACCEPTED = Counter(
    "livecomment_comments_accepted",
    "Comments accepted (stored and published) by this process, by transport (api, ws).",
    ["transport"],
)
COMMENTS_REPLAYED = Counter(
    "livecomment_comments_idempotent_replays",
    "Posts answered with an earlier comment because their Idempotency-Key repeated.",
    ["transport"],
)
COMMENTS_REJECTED = Counter(
    "livecomment_comments_rejected",
    "Comment posts refused, by error code (the API's error.code) and transport.",
    ["reason", "transport"],
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
REQUEST_LATENCY = Histogram(
    "livecomment_http_request_duration_seconds",
    "Time to answer a Django request (pages, REST API, long-poll), by method and route name.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "livecomment_http_requests",
    "Django requests answered, by method, route name and status code.",
    ["method", "route", "status"],
)

POST_BATCH_SIZE = Histogram(
    "livecomment_post_batch_size",
    "Comment POSTs written together by the group commit (comments/fastpost/batcher.py), per batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


def comment_accepted(transport: str, created: bool = True) -> None:
    (COMMENTS_ACCEPTED if created else COMMENTS_REPLAYED).labels(transport).inc()


def comment_rejected(reason: str, transport: str) -> None:
    COMMENTS_REJECTED.labels(reason or "error", transport).inc()


# --- read at scrape time -------------------------------------------------------

TRANSPORTS = {"sse": "sse", "ws": "ws", "wait": "long_poll"}

# hub.stats key -> (metric name without _total, help). Keys not listed here
# (new ones the hub may grow) are still exported, as livecomment_hub_events_total{event=key}.
HUB_COUNTERS = {
    "deliveries": ("livecomment_deliveries", "Frames handed to local connections (one per connection per event)."),
    "overflows": ("livecomment_slow_clients_dropped", "Connections closed because their bounded buffer overflowed."),
    "gap_repairs": ("livecomment_gap_repairs", "Gaps in a video's events repaired by reading the stream."),
    "repaired_events": ("livecomment_repaired_events", "Events delivered through gap or tip repairs."),
    "tip_repairs": ("livecomment_tip_repairs", "Periodic tip checks that found and repaired a lost last event."),
    "messages_received": (
        "livecomment_channel_messages_received",
        "Channel-layer messages this process's hub received.",
    ),
    "messages_stale": ("livecomment_channel_messages_stale", "Received messages already delivered (dropped)."),
    "messages_unexpected": (
        "livecomment_channel_messages_unexpected",
        "Received messages for a video with no local viewer (dropped).",
    ),
    "connections_opened": ("livecomment_connections_opened", "Connections registered with the hub (all transports)."),
    "connections_closed": ("livecomment_connections_closed", "Connections that left the hub (all transports)."),
    "groups_joined": ("livecomment_groups_joined", "Channel-layer groups joined (first local viewer of a video)."),
    "groups_left": ("livecomment_groups_left", "Channel-layer groups left (last local viewer gone)."),
    "receive_errors": ("livecomment_channel_receive_errors", "Failed channel-layer receives (Redis unreachable)."),
    "resyncs": ("livecomment_resyncs", "Re-joins and repairs after the channel layer came back."),
}


class HubCollector:
    """This process's hub and publisher counters, read when scraped."""

    def collect(self):
        from dispatcher import gateway_snapshot

        gateway = gateway_snapshot()
        stats = gateway.stats

        open_connections = GaugeMetricFamily(
            "livecomment_open_connections",
            "Open real-time connections in this process, by transport (sse, ws, long_poll).",
            labels=["transport"],
        )
        counts = dict.fromkeys(TRANSPORTS.values(), 0)
        videos = gateway.videos
        for connection_kind, count in gateway.connections_by_kind.items():
            kind = TRANSPORTS.get(connection_kind, connection_kind)
            counts[kind] = counts.get(kind, 0) + count
        for transport, count in sorted(counts.items()):
            open_connections.add_metric([transport], count)
        yield open_connections
        info = GaugeMetricFamily(
            "livecomment_gateway_info",
            "This gateway process: its pid and channel-layer channel (tells workers apart).",
            labels=["pid", "channel"],
        )
        info.add_metric([str(os.getpid()), gateway.channel], 1)
        yield info
        yield GaugeMetricFamily(
            "livecomment_videos_watched", "Videos with at least one local connection (groups joined).", value=videos
        )
        yield GaugeMetricFamily(
            "livecomment_gateway_draining",
            "1 while this process drains for shutdown.",
            value=1 if gateway.shutting_down else 0,
        )

        for key, (name, documentation) in HUB_COUNTERS.items():
            yield CounterMetricFamily(name, documentation, value=stats.get(key, 0))
        other = CounterMetricFamily(
            "livecomment_hub_events", "Other hub counters (dispatcher/hub.py stats), by name.", labels=["event"]
        )
        for key in sorted(set(stats) - set(HUB_COUNTERS)):
            other.add_metric([key], stats[key])
        yield other

        sent = CounterMetricFamily(
            "livecomment_channel_messages_sent",
            "Channel-layer group_sends by this process's publisher (one per event, whatever the viewer count).",
            value=gateway.group_sends,
        )
        yield sent


_collector = HubCollector()
REGISTRY.register(_collector)


# --- the endpoint ----------------------------------------------------------------


def allowed(scope) -> bool:
    """Loopback clients only (unless METRICS_PUBLIC), and not through a proxy from outside."""
    return settings.METRICS_PUBLIC or limits.loopback_client(scope)


def render(accept: str = "") -> tuple[bytes, str]:
    encoder, content_type = choose_encoder(accept)
    return encoder(REGISTRY), content_type


class MetricsConsumer(AsyncHttpConsumer):
    channel_layer_alias = "__none__"  # no channel per scrape

    async def handle(self, body):
        if not allowed(self.scope):
            await self.send_response(
                403,
                b'{"error":{"code":"forbidden","message":"/metrics answers loopback clients only."}}',
                headers=[(b"content-type", b"application/json")],
            )
            return
        if self.scope["method"] not in ("GET", "HEAD"):
            await self.send_response(
                405,
                b'{"error":{"code":"method_not_allowed","message":"Use GET."}}',
                headers=[(b"content-type", b"application/json"), (b"allow", b"GET, HEAD")],
            )
            return
        accept = ""
        for name, value in self.scope.get("headers") or ():
            if name == b"accept":
                accept = value.decode("latin-1")
        output, content_type = render(accept)
        await self.send_response(
            200,
            b"" if self.scope["method"] == "HEAD" else output,
            headers=[(b"content-type", content_type.encode()), (b"cache-control", b"no-store")],
        )
