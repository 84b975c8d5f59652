"""Request id, one structured log line and latency metrics per Django request.

First in settings.MIDDLEWARE, so the time covers every other middleware and
the status is the one the client gets. Both sync and async, so the async
long-poll view is not pushed through a thread by it.

* Request id: an incoming `X-Request-ID` (if it looks like an id) or a fresh
  one; set for the request's context (every log record made meanwhile
  carries it, livecomment/logging_config.py) and returned as `X-Request-ID`.
* Log: one INFO record on logger `livecomment.request` with method, path,
  route, status, duration_ms, request_id, client (LOG_REQUESTS=0 turns it off).
* Metrics: `livecomment_http_request_duration_seconds{method,route}` and
  `livecomment_http_requests_total{method,route,status}` -- by route *name*,
  never the raw path, so the label set stays small.

The real-time endpoints (SSE, WebSocket, /metrics, /gateway/stats) are ASGI
consumers in front of Django and log for themselves.
"""

from __future__ import annotations

import logging
import time

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from livecomment import metrics
from livecomment.logging_config import REQUEST_ID, clean_request_id

log = logging.getLogger("livecomment.request")

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


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
        elapsed = time.perf_counter() - started
        response["X-Request-ID"] = request.request_id
        method = request.method if request.method in METHODS else "other"
        route = route_of(request)
        metrics.REQUEST_LATENCY.labels(method, route).observe(elapsed)
        metrics.REQUESTS.labels(method, route, str(response.status_code)).inc()
        if settings.LOG_REQUESTS and log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "event": "request",
                    "method": request.method,
                    "path": request.path,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": request.request_id,
                    "client": request.META.get("REMOTE_ADDR", ""),
                },
            )
