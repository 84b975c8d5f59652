"""Rate limits, counted in the Redis-backed cache shared by every process.

* `AnonIPThrottle` -- anonymous API requests per client IP (THROTTLE_ANON_RATE).
* `PostThrottle` -- posting comments per signed-in user (THROTTLE_POST_RATE).
* `PostIPThrottle` -- posting comments per client IP, whoever signed in
  (THROTTLE_POST_IP_RATE; generous: many viewers share one NAT).
* `ReportThrottle` -- reporting comments per signed-in user (THROTTLE_REPORT_RATE).
* `SignupIPThrottle` -- sign-up attempts per client IP (THROTTLE_SIGNUP_IP_RATE).
* `check_post_throttles()` -- the same two for posts that do not come through
  DRF (WebSocket messages), sharing the same counters.
* `ThrottledModelBackend` -- sign-in attempts, per client IP + username
  (THROTTLE_LOGIN_RATE) and per client IP (THROTTLE_LOGIN_IP_RATE), checked
  inside `authenticate()` so every way in (the token endpoint, the login page,
  the admin's login) is covered. The token endpoint and the login page answer
  429 with the wait; the admin shows its usual "wrong password".

Client IPs come from `livecomment.lib.limits.client_ip` (NUM_PROXIES applied);
loopback addresses (RATE_LIMIT_EXEMPT_IPS) are not limited per IP.

Rates come from settings at request time (not import time) so an operator's
THROTTLE_* variables and a test's override_settings both apply.

When Redis does not answer, the throttles let the request through (and log
it) instead of failing it with a 500: reads are then served from the
database, and writes answer 503 from the write path, which needs Redis anyway.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import secrets
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from rest_framework.throttling import (
    AnonRateThrottle,
    SimpleRateThrottle,
    UserRateThrottle,
)

from livecomment.lib import redis_client
from livecomment.lib.limits import client_ip, is_exempt
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)


_shared_caches: dict = {}


def _redis_backend():
    """The default cache's backend class when it is Django's RedisCache (or
    redis_client.RedisClusterCache, its cluster variant), else None."""
    return _redis_backend_of(settings.CACHES["default"]["BACKEND"])


@functools.lru_cache(maxsize=16)
def _redis_backend_of(path: str):
    from django.core.cache.backends.redis import RedisCache
    from django.utils.module_loading import import_string

    backend = import_string(path)
    return backend if isinstance(backend, type) and issubclass(backend, RedisCache) else None


def shared_cache():
    """One cache client per process for the throttles.

    Django's `cache` is per request context under ASGI, so each request built
    a new Redis connection pool -- and a new connection -- for its throttle
    checks. This keeps one per configured backend and location (tests change
    them). On a Redis Cluster (REDIS_CLUSTER_URL) the backend is
    `redis_client.RedisClusterCache`: the same counters through redis-py's
    cluster client, each key on the node of its slot.
    """
    conf = settings.CACHES["default"]
    key = (conf["BACKEND"], conf["LOCATION"], conf.get("KEY_PREFIX", ""), repr(conf.get("OPTIONS")))
    cache = _shared_caches.get(key)
    if cache is None:
        params = {k: v for k, v in conf.items() if k not in ("BACKEND", "LOCATION")}
        cache = _shared_caches[key] = _redis_backend()(conf["LOCATION"], params)
    return cache


# DRF's sliding window (SimpleRateThrottle: drop what is older than the
# window, refuse at `limit`, else note this request) in one round trip. DRF
# keeps the window as a pickled list in the cache -- a GET and a SET per
# throttle, and a Redis client object per call -- which was a seventh of a
# comment POST's CPU. Here it is a sorted set of request times. Several
# windows (a batch of posts, `api_post_throttles`) go in one call, in order.
# KEYS: the throttles' keys. ARGV: per key, now (ms), window (ms), limit, a unique member.
_WINDOWS = """
local out = {}
for i = 1, #KEYS do
  local now, window, limit = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2]), tonumber(ARGV[4 * i - 1])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    -- Empty when the limit is 0: a nil here would cut the reply short.
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    out[i] = {0, tonumber(oldest[2]) or now, count}
  else
    redis.call('ZADD', KEYS[i], now, ARGV[4 * i])
    redis.call('PEXPIRE', KEYS[i], window)
    out[i] = {1, 0, count + 1}
  end
end
return out
"""

_clients: dict = {}


def _client_of(cache):
    # One client per cache (Django's RedisCache makes a new one per call).
    client = _clients.get(id(cache))
    if client is None:
        client = _clients[id(cache)] = cache._cache.get_client(None, write=True)
    return client


class _FailOpen:
    _refused: tuple[float, int] | None = None  # (oldest request in the window, requests in it)

    @property
    def cache(self):
        if _redis_backend() is not None:
            return shared_cache()
        from django.core.cache import cache

        return cache

    def allow_request(self, request, view):
        try:
            if _redis_backend() is None:  # another cache backend: DRF's own way
                return super().allow_request(request, view)
            return self._allow_in_redis(request, view)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("throttle %s not applied, Redis unavailable: %s", self.scope, exc)
            return True

    def _allow_in_redis(self, request, view) -> bool:
        window = self._window(request, view)
        if window is None:
            return True
        key, args = window
        return self._settle(redis_client.run_script(_client_of(shared_cache()), _WINDOWS, [key], args)[0])

    def _window(self, request, view) -> tuple[str, list] | None:
        """The sliding window this request counts in: (key, script arguments),
        or None when it is not limited."""
        if self.rate is None:
            return None
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return None
        self.now = self.timer()
        now_ms = int(self.now * 1000)
        # Its own key space: DRF's lists under the plain key (from before
        # this script, or from a throttle on another backend) are strings.
        key = shared_cache().make_and_validate_key("window:" + self.key)
        return key, [now_ms, int(self.duration * 1000), self.num_requests, f"{now_ms}-{secrets.token_hex(6)}"]

    def _settle(self, reply) -> bool:
        allowed, oldest_ms, count = reply
        if allowed:
            return True
        self._refused = (int(oldest_ms) / 1000, int(count))
        return False

    def wait(self):
        if self._refused is None:
            return super().wait()
        oldest, count = self._refused
        available = self.num_requests - count + 1
        if available <= 0:
            return None
        return (self.duration - (self.now - oldest)) / available

    def get_ident(self, request):
        meta = request.META
        return client_ip(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))

    def limited_ip(self, request) -> str | None:
        """The client IP a per-IP limit counts, or None: no address, or one of
        RATE_LIMIT_EXEMPT_IPS (a local proxy without NUM_PROXIES would
        otherwise put every client in one bucket)."""
        ip = self.get_ident(request)
        return None if not ip or is_exempt(ip) else ip


class AnonIPThrottle(_FailOpen, AnonRateThrottle):
    """Anonymous requests per client IP. Signed-in users are never limited by
    IP alone: many viewers share one NAT."""

    scope = "anon"

    def get_rate(self):
        return settings.THROTTLE_ANON_RATE

    def get_cache_key(self, request, view):
        if self.limited_ip(request) is None:
            return None
        return super().get_cache_key(request, view)


class PostThrottle(_FailOpen, UserRateThrottle):
    """Posting comments, per signed-in user."""

    scope = "post"

    def get_rate(self):
        return settings.THROTTLE_POST_RATE

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class PostIPThrottle(_FailOpen, SimpleRateThrottle):
    """Posting comments, per client IP (any user): bounds what one address can
    do with many accounts."""

    scope = "post_ip"

    def get_rate(self):
        return settings.THROTTLE_POST_IP_RATE

    def get_cache_key(self, request, view):
        ip = self.limited_ip(request)
        if ip is None:
            return None  # not limited
        return self.cache_format % {"scope": self.scope, "ident": ip}

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class ReportThrottle(_FailOpen, UserRateThrottle):
    """Reporting comments, per signed-in user: each report is a row and an
    event on the video's stream for its moderators."""

    scope = "report"

    def get_rate(self):
        return settings.THROTTLE_REPORT_RATE


class SignupIPThrottle(_FailOpen, SimpleRateThrottle):
    """Sign-up attempts (form POSTs) per client IP: bounds how fast one address
    makes accounts to dodge the per-user limits."""

    scope = "signup_ip"

    def get_rate(self):
        return settings.THROTTLE_SIGNUP_IP_RATE

    def get_cache_key(self, request, view):
        ip = self.limited_ip(request)
        if ip is None:
            return None  # not limited
        return self.cache_format % {"scope": self.scope, "ident": ip}


def signup_throttled(request) -> int | None:
    """Count one sign-up attempt; the seconds to wait if it is one too many."""
    throttle = SignupIPThrottle()
    if throttle.allow_request(request, None):
        return None
    return max(1, math.ceil(throttle.wait() or 1))


def _refuse(throttle):
    return _throttled_error(max(1, int(throttle.wait() or 1)))


def _throttled_error(wait: int):
    from livecomment.lib.errors import ServiceError  # not at import: errors imports DRF's views, which import us

    return ServiceError(
        "throttled",
        f"Too many requests; try again in {wait} s.",
        429,
        headers={"Retry-After": str(wait)},
        retry_after=wait,
    )


def check_post_throttles(user, meta: dict) -> None:
    """The REST API's posting limits for a post that did not come through DRF
    (a WebSocket message): the same counters, so switching transport gains
    nothing. `meta` holds REMOTE_ADDR / HTTP_X_FORWARDED_FOR."""
    request = SimpleNamespace(user=user, META=meta, method="POST")
    for throttle in (PostThrottle(), PostIPThrottle()):
        if not throttle.allow_request(request, None):
            raise _refuse(throttle)


def api_post_throttles(posts: list[tuple[object, dict]]) -> list:
    """The REST API's throttles of signed-in users' comment POSTs, counted and
    refused exactly as DRF does (every throttle counts the request; the
    longest wait is the answer), for the group commit of the posting endpoint
    in front of Django (comments/fastpost/batcher.py, through comments.accept): several (user, META)
    posts, in order, in one round trip to Redis. A ServiceError (429) for
    each refused one, else None."""
    checks = [
        (index, throttle, SimpleNamespace(user=user, META=meta, method="POST"))
        for index, (user, meta) in enumerate(posts)
        for throttle in (PostThrottle(), PostIPThrottle())  # AnonIPThrottle: never for a signed-in user
    ]
    refused: list[list] = [[] for _ in posts]
    if _redis_backend() is None or redis_client.cluster_mode():
        # DRF's own way, or one script per window (a cluster's windows lie in different slots).
        for index, throttle, request in checks:
            if not throttle.allow_request(request, None):
                refused[index].append(throttle.wait())
        return [_throttled(waits) for waits in refused]
    try:
        counted = []
        for index, throttle, request in checks:
            window = throttle._window(request, None)
            if window is not None:
                counted.append((index, throttle, window))
        if counted:
            keys = [key for _, _, (key, _) in counted]
            args = [arg for _, _, (_, window_args) in counted for arg in window_args]
            replies = redis_client.run_script(_client_of(shared_cache()), _WINDOWS, keys, args)
            for (index, throttle, _), reply in zip(counted, replies, strict=True):
                if not throttle._settle(reply):
                    refused[index].append(throttle.wait())
    except UNAVAILABLE_ERRORS as exc:
        log.warning("post throttles not applied, Redis unavailable: %s", exc)
        return [None for _ in posts]
    return [_throttled(waits) for waits in refused]


def _throttled(waits: list):
    if not waits:
        return None
    longest = max((w for w in waits if w is not None), default=None)
    return _throttled_error(max(1, math.ceil(longest)) if longest is not None else 1)  # DRF's Throttled rounds up


# -- sign-in attempts --------------------------------------------------------------


class LoginThrottle(_FailOpen, SimpleRateThrottle):
    """Sign-in attempts per client IP and username: a password guesser gets
    THROTTLE_LOGIN_RATE tries, and cannot lock the real user out from elsewhere."""

    scope = "login"

    def __init__(self, username: str):
        self.username = username
        super().__init__()

    def get_rate(self):
        return settings.THROTTLE_LOGIN_RATE

    def get_cache_key(self, request, view):
        ip = self.get_ident(request)
        name = self.username.casefold().encode("utf-8", "replace")
        digest = hashlib.sha256(ip.encode() + b"\0" + name).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": digest}


class LoginIPThrottle(_FailOpen, SimpleRateThrottle):
    """Sign-in attempts per client IP, any username (credential stuffing)."""

    scope = "login_ip"

    def get_rate(self):
        return settings.THROTTLE_LOGIN_IP_RATE

    def get_cache_key(self, request, view):
        ip = self.get_ident(request)
        if is_exempt(ip):
            return None
        return self.cache_format % {"scope": self.scope, "ident": ip}


def login_throttled(request, username) -> int | None:
    """Count one sign-in attempt; the seconds to wait if it is one too many."""
    if request is None or not request.META.get("REMOTE_ADDR"):
        return None  # not a request from a client (a script, a test's client.login())
    if not isinstance(username, str):
        username = ""
    for throttle in (LoginThrottle(username), LoginIPThrottle()):
        if not throttle.allow_request(request, None):
            return max(1, int(throttle.wait() or 1))
    return None


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend behind the sign-in throttles.

    Over the limit, or with wrong credentials, it raises PermissionDenied so
    that `authenticate()` stops here (the plain ModelBackend listed after it
    only resolves sessions made before it existed) and the password is
    checked once. `request.login_throttled` tells the caller how long to wait.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            from django.contrib.auth import get_user_model

            username = kwargs.get(get_user_model().USERNAME_FIELD)
        wait = login_throttled(request, username)
        if wait is not None:
            request.login_throttled = wait
            log.warning("sign-in throttled for %r from %s", username, request.META.get("REMOTE_ADDR"))
            raise PermissionDenied("too many sign-in attempts")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            raise PermissionDenied("wrong credentials")
        return user


def login_wait(request) -> int | None:
    """After a failed authenticate(): the seconds to wait if it failed because
    of the sign-in throttle (None: wrong credentials)."""
    return getattr(request, "login_throttled", None)
