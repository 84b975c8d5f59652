"""DRF throttles, counted in the Redis-backed cache shared by every process.

Rates come from settings at request time (not import time) so an operator's
THROTTLE_* variables and a test's override_settings both apply.
"""

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class AnonIPThrottle(AnonRateThrottle):
    """Anonymous requests per client IP. Signed-in users are never limited by
    IP alone: many viewers share one NAT."""

    scope = "anon"

    def get_rate(self):
        return settings.THROTTLE_ANON_RATE


class PostThrottle(UserRateThrottle):
    """Posting comments, per signed-in user."""

    scope = "post"

    def get_rate(self):
        return settings.THROTTLE_POST_RATE

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)
