"""DRF throttles, counted in the Redis-backed cache shared by every process.

Rates come from settings at request time (not import time) so an operator's
THROTTLE_* variables and a test's override_settings both apply.

When Redis does not answer, the throttles let the request through (and log
it) instead of failing it with a 500: reads are then served from the
database, and writes answer 503 from the write path, which needs Redis anyway.
"""

import logging

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from livecomment.redis_client import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)


class _FailOpen:
    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("throttle %s not applied, Redis unavailable: %s", self.scope, exc)
            return True


class AnonIPThrottle(_FailOpen, AnonRateThrottle):
    """Anonymous requests per client IP. Signed-in users are never limited by
    IP alone: many viewers share one NAT."""

    scope = "anon"

    def get_rate(self):
        return settings.THROTTLE_ANON_RATE


class PostThrottle(_FailOpen, UserRateThrottle):
    """Posting comments, per signed-in user."""

    scope = "post"

    def get_rate(self):
        return settings.THROTTLE_POST_RATE

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
