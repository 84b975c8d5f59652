"""Under /api/: a route with or without its trailing slash, and every error as JSON.

* `POST /api/v1/videos/1/comments` is the route `.../comments/`: Django's
  APPEND_SLASH would answer a body-dropping 301 (a RuntimeError page under
  DEBUG), so the slash is added to the path before the URL is resolved.
* Answers Django makes itself -- an unmatched path (its technical 404 page under
  DEBUG), a function view's 405, a 500 -- get the error shape
  {"error": {"code", "message"}} that DRF's views already answer with.

Second in settings.MIDDLEWARE, after RequestMiddleware: the request log sees
the final status, and CommonMiddleware sees the path with its slash.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.urls import is_valid_path

from livecomment.lib.errors import error_body

PREFIX = "/api/"

CODES = {
    400: ("bad_request", "Bad request."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("body_too_large", "The request body is too large."),
    500: ("server_error", "Internal error; it has been logged."),
}


def add_slash(request) -> None:
    """Resolve `/api/x` as `/api/x/` when only the latter is a route."""
    path = request.path_info
    if path.endswith("/"):
        return
    urlconf = getattr(request, "urlconf", None)
    if not is_valid_path(path, urlconf) and is_valid_path(f"{path}/", urlconf):
        request.path_info = f"{path}/"
        request.path = f"{request.path}/"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def as_json(response):
    """An error answer that is not JSON gets the error shape, in place (its
    other headers -- Allow, the security headers -- stay)."""
    if response.status_code < 400 or response.streaming:
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    status = response.status_code
    code, message = CODES.get(status) or ("error", f"{_phrase(status)}.")
    response.content = json.dumps(error_body(code, message)).encode()
    response["Content-Type"] = "application/json"
    if response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))
    return response


class ApiPathsMiddleware:
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
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        add_slash(request)
        return as_json(self.get_response(request))

    async def __acall__(self, request):
        if not request.path_info.startswith(PREFIX):
            return await self.get_response(request)
        add_slash(request)
        return as_json(await self.get_response(request))
