"""The HTTP edge every request passes, written once for Django's middleware
(livecomment/lib/middleware.py) and the ASGI endpoints in front of Django (the
comment fast path): allowed hosts, the TLS redirect's test, the security
headers of an answer, the request id, and one log line and the metrics per
request.

An endpoint in front of Django takes only requests Django would let through
(`host_allowed`, `is_secure`) and adds the headers Django's SecurityMiddleware
and XFrameOptionsMiddleware would (`security_headers`), so a client cannot
tell which one answered.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from livecomment.lib import metrics
from livecomment.lib.logging_config import REQUEST_ID, clean_request_id

log = logging.getLogger("livecomment.request")

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

__all__ = [
    "REQUEST_ID",
    "account",
    "clean_request_id",
    "host_allowed",
    "is_secure",
    "security_headers",
    "takes_only_plain_requests",
]


def host_allowed(host: str) -> bool:
    """Django's ALLOWED_HOSTS check of a `Host` header (request.get_host())."""
    domain, _ = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def is_secure(scope, headers: dict[str, str]) -> bool:
    """request.is_secure() for an ASGI scope and its (lower-case) headers."""
    if settings.SECURE_PROXY_SSL_HEADER:
        name, value = settings.SECURE_PROXY_SSL_HEADER
        name = name.removeprefix("HTTP_").replace("_", "-").lower()
        return headers.get(name, "").split(",")[0].strip() == value
    return scope.get("scheme") == "https"


def takes_only_plain_requests() -> bool:
    """False when Django's middleware weighs more than host and scheme (a
    forwarded host, refused user agents): an endpoint in front of Django then
    leaves every request to it."""
    return not (settings.USE_X_FORWARDED_HOST or settings.DISALLOWED_USER_AGENTS)


def security_headers() -> list[tuple[bytes, bytes]]:
    """What Django's SecurityMiddleware and XFrameOptionsMiddleware add to an API answer."""
    headers = []
    if settings.X_FRAME_OPTIONS:
        headers.append((b"x-frame-options", settings.X_FRAME_OPTIONS.upper().encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        value = policy if isinstance(policy, str) else ",".join(policy)
        headers.append((b"referrer-policy", value.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append((b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    return headers


def account(method: str, path: str, route: str, status: int, started: float, request_id: str, client: str) -> None:
    """The request's metrics and its one log line (LOG_REQUESTS=0: no line).

    Metrics are by route *name*, never the raw path, so the label set stays small.
    """
    elapsed = time.perf_counter() - started
    label = method if method in METHODS else "other"
    metrics.REQUEST_LATENCY.labels(label, route).observe(elapsed)
    metrics.REQUESTS.labels(label, route, str(status)).inc()
    if settings.LOG_REQUESTS and log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "event": "request",
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "request_id": request_id,
                "client": client,
            },
        )
