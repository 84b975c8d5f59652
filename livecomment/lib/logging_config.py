"""Structured logs: the request id, and the formatters settings.LOGGING uses.

Every log record gets a `request_id` attribute when one is known: the
request middleware (livecomment/lib/middleware.py) sets it for the duration of a
Django request, so anything logged while serving it -- Django's own
"Not Found" warnings, the write path's warnings -- carries it. The SSE and
WebSocket consumers pass theirs explicitly (`extra=`).

`LOG_FORMAT=json` (the default with DEBUG=0) writes one JSON object per line
through python-json-logger; `LOG_FORMAT=plain` writes the classic text line
with the structured fields appended as `key=value`.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

# The id of the request being served in this context (None outside requests).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# An incoming X-Request-ID is kept only if it looks like an id (a load
# balancer's or a client's UUID, trace id, ...): nothing that could forge
# log lines or bloat them.
_VALID_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(value: str | bytes | None) -> str:
    """The incoming id if it is acceptable, else a fresh one."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value and _VALID_ID.fullmatch(value):
        return value
    return new_request_id()


def request_id_from_scope(scope) -> str:
    """X-Request-ID of an ASGI connection (the streams), or a fresh id."""
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            return clean_request_id(value)
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Adds `request_id` from the current context to records that have none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class PlainFormatter(logging.Formatter):
    """The classic text line, plus the structured fields as key=value."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extras = [f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")]
        return f"{line} {' '.join(extras)}" if extras else line


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time, level, logger, message, then the fields."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("json_ensure_ascii", False)
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "taskName", "color_message"])  # uvicorn's ANSI copy
        super().__init__(*args, **kwargs)

    def formatTime(self, record, datefmt=None):
        # ISO 8601 in UTC with milliseconds, whatever the machine's zone.
        import datetime

        stamp = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def logging_config(log_format: str, level: str) -> dict:
    """The LOGGING dict for settings.py."""
    if log_format not in ("json", "plain"):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'plain', got {log_format!r}")
    console = {
        "class": "logging.StreamHandler",
        "formatter": log_format,
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "livecomment.lib.logging_config.RequestIdFilter"}},
        "formatters": {
            "plain": {
                "()": "livecomment.lib.logging_config.PlainFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            },
            "json": {"()": "livecomment.lib.logging_config.JsonFormatter"},
        },
        "handlers": {"console": console},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Django's default config gives "django" a plain console handler of
            # its own (DEBUG only): replace it, so nothing is written twice.
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            # 4xx are in the request line already; 5xx (with the traceback) stay.
            "django.request": {"level": "ERROR"},
            "django.channels.server": {"level": "WARNING"},
            # The servers configure their own loggers before Django starts;
            # route them through the same handler so every line has one format.
            "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["console"], "level": "WARNING", "propagate": False},
            "daphne": {"handlers": ["console"], "level": "INFO", "propagate": False},
        },
    }
