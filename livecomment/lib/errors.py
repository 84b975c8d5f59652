"""One error shape for every client: {"error": {"code": ..., "message": ...}}.

Services raise `ServiceError`; the API's exception handler, the WebSocket
consumer and the Django-level 404/500 handlers all render it the same way.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

log = logging.getLogger(__name__)


# Every `code` the API, the streams and the WebSocket can answer with, and what
# it means. The OpenAPI `Error` schema's enum is generated from it
# (comments.serializers.ErrorSerializer) and tests/test_error_codes.py fails on
# a code in the source that is missing here.
ERROR_CODES: dict[str, str] = {
    # Requests in general
    "bad_request": "The request is malformed (e.g. a bad Host header).",
    "invalid_json": "The body is not valid JSON, or nests too deeply.",
    "invalid_body": "The body must be a JSON object.",
    "unknown_fields": "The body has fields the endpoint does not know.",
    "invalid": "A field failed validation; `fields` says which and why.",
    "body_too_large": "The request body is too large.",
    "headers_too_large": "The request headers are too large.",
    "unsupported_media_type": "The body's Content-Type is not application/json.",
    "not_acceptable": "The Accept header asks for a format the API does not serve.",
    "method_not_allowed": "The path exists but not with this method (see the Allow header).",
    "not_found": "No such path or object (or not visible to you).",
    "server_error": "An internal error; it has been logged.",
    "error": "Any other HTTP error without a code of its own.",
    # Who you are
    "not_authenticated": "The endpoint needs a signed-in user; no credentials were sent.",
    "authentication_failed": "Credentials were sent but are wrong: an unknown token or an unknown scheme.",
    "missing_credentials": "Sign-in needs a username and a password.",
    "invalid_credentials": "The username or the password is wrong.",
    "permission_denied": "You may not do this (e.g. not a moderator of this video).",
    "csrf_failed": "A session-cookie write without the CSRF token.",
    "forbidden": "The endpoint answers loopback clients only.",
    # Limits
    "throttled": "Too many requests; `retry_after` (and Retry-After) says when to try again.",
    "slow_mode": "The video is in slow mode; `retry_after` says when you may post again.",
    "too_many_streams": "Too many open streams from your address; close one first.",
    "too_many_long_polls": "Too many waiting long-polls; let one end first.",
    # Backing services
    "database_unavailable": "The database is down; nothing was saved. Retry after Retry-After.",
    "redis_unavailable": "Redis is down; nothing was saved. Retry after Retry-After.",
    "gateway_unavailable": "The gateway is shutting down or cannot serve streams; reconnect.",
    # Comments
    "missing_text": "The comment has no `text`.",
    "invalid_text": "`text` must be a string.",
    "empty_text": "The text is empty after stripping.",
    "too_long": "The text is longer than allowed.",
    "control_characters": "The text holds control characters.",
    "blocked_term": "The text holds a term the video's moderators block.",
    "duplicate": "The same text was posted by you moments ago.",
    "banned": "You are banned from this video's chat.",
    "comments_disabled": "Comments are turned off for this video.",
    "video_not_live": "The video does not take comments in its state.",
    "invalid_idempotency_key": "The Idempotency-Key header is too long or not printable ASCII.",
    "idempotency_key_reused": "The Idempotency-Key was used before with a different body.",
    "request_in_progress": "A request with the same Idempotency-Key is still being handled; retry.",
    "already_reported": "You reported this comment already.",
    "invalid_comment": "The body needs a comment id.",
    # Reading pages and streams
    "invalid_cursor": "after= / before= is not a stream position.",
    "invalid_limit": "limit= is not a whole number in range.",
    "invalid_wait": "wait= is not a whole number in range.",
    "missing_after": "wait= needs after=<cursor>.",
    "invalid_state": "A state (filter or new state) is not one of the allowed values.",
    "invalid_last_event_id": "Last-Event-ID is not a stream position.",
    "invalid_from_ms": "from_ms= is missing or not a whole number of milliseconds in range.",
    "invalid_to_ms": "to_ms= is missing or not a whole number of milliseconds in range.",
    "invalid_range": "to_ms= is before from_ms=.",
    # Moderation and video settings
    "invalid_action": "The moderation action is not one the endpoint knows.",
    "invalid_reason": "The reason is missing, not a string or too long.",
    "invalid_target": "The action cannot apply to this user (e.g. yourself or staff).",
    "invalid_user": "`user` is not a user id or a username.",
    "missing_user": "`user` is missing.",
    "user_not_found": "No such user.",
    "invalid_duration": "The ban or pin duration is not a whole number of seconds in range.",
    "invalid_pin": 'A pin is exactly one of {"comment": <id>} or {"text": ..., "duration_s": ...}.',
    "invalid_remove_comments": "`remove_comments` must be a boolean.",
    "invalid_resolved": "`resolved` must be a boolean.",
    "invalid_pattern": "The blocked term is not a valid regular expression.",
    "invalid_slow_mode": "slow_mode_seconds is not a whole number in range.",
    "invalid_comments_enabled": "comments_enabled must be a boolean.",
    "invalid_state_transition": "The video cannot move from its state to that one.",
    # WebSocket frames
    "invalid_message": "A WebSocket frame is not a JSON object with a known shape.",
    "unknown_action": "A WebSocket frame's `action` is not one the socket knows.",
    "not_connected": "The socket is not joined to a video yet.",
}
ERROR_CODE_CHOICES = list(ERROR_CODES.items())


class ServiceError(Exception):
    """A request the service refuses, with the HTTP status that says why."""

    def __init__(self, code: str, message: str, status: int = 400, headers: dict | None = None, **extra):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}
        self.extra = extra

    def as_dict(self) -> dict:
        body = {"code": self.code, "message": self.message}
        body.update(self.extra)
        return {"error": body}


class Unavailable(ServiceError):
    """A backing service (database or Redis) is down: 503, nothing written."""

    def __init__(self, what: str):
        super().__init__(
            f"{what}_unavailable",
            f"The {what} is unavailable right now; nothing was saved. Try again shortly.",
            503,
            headers={"Retry-After": "2"},
        )


def error_body(code: str, message: str, **extra) -> dict:
    body = {"code": code, "message": message}
    body.update(extra)
    return {"error": body}


_DRF_CODES = {
    drf.ParseError: "invalid_json",
    drf.AuthenticationFailed: "authentication_failed",
    drf.NotAuthenticated: "not_authenticated",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
    drf.ValidationError: "invalid",
}


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            message = _first_message(value)
            return message if field == "non_field_errors" else f"{field}: {message}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def _outage(exc) -> ServiceError | None:
    """Unavailable for an error that means a backing service is down.

    The write path turns these into `Unavailable` itself; this catches the
    rest (a cache read, a query outside the services), so that an outage
    answers 503 with the error shape rather than a 500.
    """
    import redis
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, (OperationalError, InterfaceError)):
        return Unavailable("database")
    # Only redis-py's own errors: a bare OSError may come from anywhere.
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return Unavailable("redis")
    return None


def _settle_user(request) -> None:
    """Authenticate now if the view had not yet (it refused the format first):
    a renderer that reads `request.user` later -- the docs page's template --
    would meet a failed authentication while it renders the error, a 500.
    DRF sets the anonymous user on the failure; the error answered stays
    (and stays the answer with the database down, too)."""
    from django.db import DatabaseError

    if request is None:
        return
    try:
        request.user  # noqa: B018 - the read is the point
    except (drf.APIException, DatabaseError):
        pass


def api_exception_handler(exc, context):
    _settle_user(context.get("request"))
    # Django's own exceptions, raised inside DRF (e.g. Http404 from content
    # negotiation for ?format=xml): DRF's handler answers them, but they carry
    # no .detail for the error body below.
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        return Response(error_body("body_too_large", "The request body is too large."), status=413)
    if not isinstance(exc, (ServiceError, drf.APIException)):
        outage = _outage(exc)
        if outage is not None:
            log.warning("%s: %s", outage.code, exc)
            exc = outage
    if isinstance(exc, ServiceError):
        return Response(exc.as_dict(), status=exc.status, headers=exc.headers)
    response = drf_default_handler(exc, context)
    if response is None:
        return None  # a real bug: Django's 500 handler (JSON for the API) takes it
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, drf.ValidationError):
        body = error_body(code, _first_message(exc.detail), fields=exc.detail)
    elif isinstance(exc, drf.Throttled):
        wait = int(exc.wait or 1)
        body = error_body(code, f"Too many requests; try again in {wait} s.", retry_after=wait)
        response["Retry-After"] = str(max(wait, 1))
    else:
        body = error_body(code, _first_message(exc.detail))
    response.data = body
    return response


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def handler404(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if _wants_json(request):
        return JsonResponse(error_body("server_error", "Internal error; it has been logged."), status=500)
    from django.views.defaults import server_error

    return server_error(request)


def handler400(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body("bad_request", "Bad request."), status=400)
    from django.views.defaults import bad_request

    return bad_request(request, exception)
