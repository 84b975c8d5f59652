"""Settings of the django-eventstream comparison target (bench only).

Env: EVENTSTREAM_REDIS_SOCKET (unix socket of the redis-server bench starts)
or EVENTSTREAM_REDIS_URL; ES_VAR_DIR for the (unused) SQLite file.
"""

import os
from pathlib import Path

SECRET_KEY = os.environ.get("SECRET_KEY", "bench-eventstream-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_eventstream",
]
MIDDLEWARE = []  # no sessions/auth: anonymous readers, like the public comment stream
ROOT_URLCONF = "bench.eventstream_target.urls"
ASGI_APPLICATION = "bench.eventstream_target.asgi.application"
_var = Path(os.environ.get("ES_VAR_DIR", "/tmp"))
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(_var / "eventstream.sqlite3")}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-eventstream's multi-process transport: send_event() PUBLISHes to
# Redis, every process's RedisListener SUBSCRIBEs and queues to its listeners.
if os.environ.get("EVENTSTREAM_REDIS_SOCKET"):
    EVENTSTREAM_REDIS = {"unix_socket_path": os.environ["EVENTSTREAM_REDIS_SOCKET"]}
else:
    import redis as _redis

    _kw = _redis.connection.parse_url(os.environ.get("EVENTSTREAM_REDIS_URL", "redis://127.0.0.1:6379/14"))
    EVENTSTREAM_REDIS = {k: v for k, v in _kw.items() if k in ("host", "port", "db", "password", "username", "path")}
    if "path" in EVENTSTREAM_REDIS:
        EVENTSTREAM_REDIS["unix_socket_path"] = EVENTSTREAM_REDIS.pop("path")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
