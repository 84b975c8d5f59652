"""Long-poll: GET /api/v1/videos/<id>/comments/?after=<cursor>&wait=<1..30>.

For clients that cannot keep a stream open. The request returns as soon as
there is a comment after the cursor, or with an empty page once `wait`
seconds pass. While it waits it is a `Waiter` in this process's hub (no
Redis connection, no thread held): registered *before* the second look, so a
comment posted between the look and the wait still wakes it. Each look borrows
a pool thread (and that thread's database connection) only while it runs,
so a waiting poll holds neither. Waiting polls are capped per
user and per client IP (`limits.open_long_poll_slot`, 429 beyond it): each
comment wakes every waiter of its video for one more look.

An async view in front of the DRF one: without `wait` it just calls the DRF
view.
"""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from comments.api import CommentListView, parse_int
from dispatcher import EventWait
from livecomment.lib import limits
from livecomment.lib.errors import ServiceError, error_body
from livecomment.lib.redis_client import UNAVAILABLE_ERRORS

_list_view = CommentListView.as_view()


def _rendered(response):
    # Rendered here, in the view's thread: Django's async handler would
    # otherwise start a thread of its own for the request just to render it.
    if hasattr(response, "render"):
        response.render()
    return response


def _run_view_in_pool(request, video_id):
    # Like channels' database_sync_to_async: this runs in a pool thread,
    # whose connection Django's request_finished signal never sees.
    close_old_connections()
    try:
        return _rendered(_list_view(request, video_id=video_id))
    finally:
        close_old_connections()


def _run_view(request, video_id):
    return _rendered(_list_view(request, video_id=video_id))


# A pool of threads, not Django's one shared sync thread: posts and reads of
# comments wait on Redis and the database in parallel. (Off in in-process
# tests, whose data lives in one thread's uncommitted transaction.)
_pooled_view = sync_to_async(_run_view_in_pool, thread_sensitive=False)
_shared_thread_view = sync_to_async(_run_view, thread_sensitive=True)


async def _call_view(request, video_id):
    view = _pooled_view if settings.API_THREAD_POOL else _shared_thread_view
    response = await view(request, video_id)
    if isinstance(request, ASGIRequest) and getattr(response, "is_rendered", False):
        # The async handler renders a template response through a thread hop
        # unless its render is a coroutine function; it is rendered already.
        response.render = _already_rendered(response)
    return response


def _already_rendered(response):
    async def render():
        return response

    return render


def _has_results(response) -> bool:
    return response.status_code != 200 or bool(getattr(response, "data", {}).get("results"))


@csrf_exempt
async def comments_endpoint(request, video_id: int):
    wait_param = request.GET.get("wait")
    if request.method != "GET" or wait_param is None:
        return await _call_view(request, video_id)
    limit = settings.LONG_POLL_MAX_SECONDS
    try:
        wait = parse_int(wait_param, "wait", limit, 1, limit)
    except ServiceError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status)
    if not request.GET.get("after"):
        return JsonResponse(error_body("missing_after", "wait= needs after=<cursor>."), status=400)

    response = await _call_view(request, video_id)
    if _has_results(response):
        return response
    try:
        slot = limits.open_long_poll_slot(_user_id(request), _client_ip(request))
    except ServiceError as refused:
        return _error_response(refused)
    # The looks after the first are the same request: its throttles are counted once.
    request.long_poll_recheck = True
    wait_ = EventWait(video_id)
    try:
        # Inside the try: a client that leaves while this waits is cancelled
        # here, and its slot and hub entry must still be given back.
        try:
            await wait_.join()
        except UNAVAILABLE_ERRORS:
            return response  # cannot wait without Redis: answer what we have
        deadline = time.monotonic() + wait
        while True:
            response = await _call_view(request, video_id)
            remaining = deadline - time.monotonic()
            if _has_results(response) or remaining <= 0:
                return response
            await wait_.wait_for_event(remaining)
    finally:
        wait_.leave()
        slot.release()


def _user_id(request) -> int | None:
    # The first look ran DRF's authentication, which set the request's user
    # (token or session): reading it here touches no database.
    user = getattr(request, "user", None)
    return user.pk if user is not None and user.is_authenticated else None


def _client_ip(request) -> str:
    return limits.client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def _error_response(error: ServiceError) -> JsonResponse:
    response = JsonResponse(error.as_dict(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


# The OpenAPI generator documents the DRF view this endpoint wraps.
comments_endpoint.cls = CommentListView
comments_endpoint.initkwargs = {}
comments_endpoint.view_class = CommentListView
