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


def api_exception_handler(exc, context):
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
