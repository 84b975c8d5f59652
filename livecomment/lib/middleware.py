"""Request id, one structured log line and latency metrics per Django request.

First in settings.MIDDLEWARE, so the time covers every other middleware and
the status is the one the client gets. Both sync and async, so the async
long-poll view is not pushed through a thread by it.

* Request id: an incoming `X-Request-ID` (if it looks like an id) or a fresh
  one; set for the request's context (every log record made meanwhile
  carries it, livecomment/lib/logging_config.py) and returned as `X-Request-ID`.
* Log and metrics (livecomment/lib/http_edge.py, shared with the endpoints in
  front of Django): one INFO record on logger `livecomment.request` with method, path,
  route, status, duration_ms, request_id, client (LOG_REQUESTS=0 turns it off).
* Metrics: `livecomment_http_request_duration_seconds{method,route}` and
  `livecomment_http_requests_total{method,route,status}` -- by route *name*,
  never the raw path, so the label set stays small.

The real-time endpoints (SSE, WebSocket, /metrics, /gateway/stats) are ASGI
consumers in front of Django and log for themselves.
"""

from __future__ import annotations

import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from livecomment.lib import http_edge
from livecomment.lib.http_edge import REQUEST_ID, clean_request_id


def route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or match.route or "unnamed"
    if request.path.startswith(settings.STATIC_URL):
        return "static"
    return "unmatched"


class RequestMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        started, token = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        self._end(request, response, started)
        return response

    async def __acall__(self, request):
        started, token = self._begin(request)
        try:
            response = await self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        self._end(request, response, started)
        return response

    @staticmethod
    def _begin(request):
        request.request_id = clean_request_id(request.headers.get("X-Request-ID"))
        return time.perf_counter(), REQUEST_ID.set(request.request_id)

    @staticmethod
    def _end(request, response, started: float) -> None:
        response["X-Request-ID"] = request.request_id
        http_edge.account(
            request.method,
            request.path,
            route_of(request),
            response.status_code,
            started,
            request.request_id,
            request.META.get("REMOTE_ADDR", ""),
        )
