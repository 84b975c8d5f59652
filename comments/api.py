"""REST endpoints for comments (mobile apps and the web page). Thin: parse,
call comments.services / comments.queries, render."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import DatabaseError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticatedOrReadOnly
from rest_framework.response import Response
from rest_framework.views import APIView

from comments import cursors, queries, services
from comments.accept import Post, accept
from comments.events import comment_json
from comments.models import Comment
from comments.serializers import (
    CommentPageSerializer,
    ErrorSerializer,
    OwnCommentSerializer,
    PostCommentSerializer,
    ReplayPageSerializer,
)
from livecomment.lib import metrics
from livecomment.lib.errors import ServiceError, Unavailable
from livecomment.lib.parsers import strict_body
from livecomment.lib.throttling import AnonIPThrottle, PostIPThrottle, PostThrottle
from videos.lookups import get_video

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 404, 409, 413, 415, 429, 503)}
# A stream position (comments/cursors.py), as the schema states it.
# What comments.services.clean_idempotency_key takes from a header (Latin-1):
# printable characters (str.isprintable: not C0/C1 controls, NBSP or the soft hyphen);
# an empty value is no key, as the header's absence is.
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "maxLength": services.IDEMPOTENCY_KEY_MAX,
    "pattern": r"^[ -~\u00a1-\u00ac\u00ae-\u00ff]*$",
}
CURSOR_SCHEMA = {"type": "string", "pattern": "^[0-9]{1,13}-[0-9]{1,6}$", "example": "1764000000000-0"}


def parse_cursor(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not cursors.is_valid(value):
        raise ServiceError("invalid_cursor", f"{name} must be a stream position like 1764000000000-0.")
    return cursors.canonical(value)


# Digits only: int() would also take " 5", "+5", "5_0" and other scripts' digits,
# which no schema "integer" allows. More digits than this is out of range anyway.
_DIGITS = re.compile(r"[0-9]{1,9}")


def parse_int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    """A query parameter that is a whole number from low to high when present
    (absent: the default). Anything else, the empty string included, is a 400
    invalid_<name>, as the schema's integer with minimum and maximum says."""
    if value is None:
        return default
    if not _DIGITS.fullmatch(value) or not low <= int(value) <= high:
        raise ServiceError(f"invalid_{name}", f"{name} must be a whole number from {low} to {high}.")
    return int(value)


class CommentListView(APIView):
    permission_classes = [IsAuthenticatedOrReadOnly]
    throttle_classes = [AnonIPThrottle, PostThrottle, PostIPThrottle]

    def get_throttles(self):
        if getattr(self.request, "long_poll_recheck", False):  # comments/longpoll.py: counted at its first look
            return []
        return super().get_throttles()

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if self.request.method == "POST":  # a refused post, by its error code (throttled, invalid_text, ...)
            error = response.data.get("error") if isinstance(response.data, dict) else None
            metrics.comment_rejected(error.get("code", "") if isinstance(error, dict) else "", "api")
        return response

    @extend_schema(
        operation_id="comments_list",
        parameters=[
            OpenApiParameter("after", CURSOR_SCHEMA, description="Comments after this cursor, oldest first (catch-up)"),
            OpenApiParameter("before", CURSOR_SCHEMA, description="Comments before this cursor (history page)"),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                description=f"1..{MAX_LIMIT}, default {DEFAULT_LIMIT}; anything else is 400 invalid_limit",
            ),
            OpenApiParameter(
                "wait",
                {"type": "integer", "minimum": 1, "maximum": settings.LONG_POLL_MAX_SECONDS},
                description=(
                    f"Long-poll: wait up to this many seconds (1..{settings.LONG_POLL_MAX_SECONDS}) "
                    "for a new comment. Requires after= "
                    "(without it: 400 missing_after); out of range or not a number: 400 invalid_wait"
                ),
                extensions={"x-requires": ["after"]},
            ),
        ],
        responses={200: CommentPageSerializer, **ERRORS},
    )
    def get(self, request, video_id: int):
        after = parse_cursor(request.query_params.get("after"), "after")
        before = parse_cursor(request.query_params.get("before"), "before")
        limit = parse_int(request.query_params.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        video = get_video(video_id)
        try:
            if after is not None and before is not None:
                page = queries.page_between(video.pk, after, before, limit)
            elif after is not None:
                page = queries.page_after(video.pk, after, limit)
            elif before == cursors.ZERO:  # nothing precedes 0-0 (and Redis refuses the range "(0-0")
                page = queries.Page([], False, "database")
            else:
                page = queries.page_before(video.pk, before, limit)
        except DatabaseError as exc:
            raise Unavailable("database") from exc
        return Response(page_json(page, after, before))

    @extend_schema(
        operation_id="comments_create",
        request=PostCommentSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                IDEMPOTENCY_KEY_SCHEMA,
                OpenApiParameter.HEADER,
                description=(
                    "Repeating a request with the same key within 10 minutes returns the original comment (200); "
                    "the same key with a different body is refused (422 idempotency_key_reused). "
                    f"1 to {services.IDEMPOTENCY_KEY_MAX} printable characters (printable ASCII is safest; "
                    "HTTP carries header values as Latin-1); anything else is 400 invalid_idempotency_key. "
                    "An empty value is the same as no key"
                ),
            )
        ],
        responses={
            201: OwnCommentSerializer,
            200: OwnCommentSerializer,
            **ERRORS,
            422: OpenApiResponse(
                ErrorSerializer, description="idempotency_key_reused: the Idempotency-Key was sent with another body"
            ),
        },
    )
    def post(self, request, video_id: int):
        body = strict_body(request.data, PostCommentSerializer, 'The body (like {"text": "..."})')
        if "text" not in body:
            raise ServiceError("missing_text", 'The body needs a "text" field.')
        video = get_video(video_id)
        post = Post(request.user, body["text"], request.headers.get("Idempotency-Key"))
        (answer,) = accept(video, [post], "rest")
        return Response(answer.body, status=answer.status, headers=answer.headers)


def page_json(page: queries.Page, after: str | None, before: str | None) -> dict:
    next_cursor = page.last_cursor or after or before or cursors.ZERO
    prev_cursor = page.first_cursor or before
    return {
        "results": page.results,
        "cursor": next_cursor if after is not None else prev_cursor,
        "next_cursor": next_cursor,
        "prev_cursor": prev_cursor,
        "has_more": page.has_more,
    }


# Replay offsets: whole milliseconds, signed (chat before the start is negative),
# within about 31 years either side of the start.
REPLAY_MS_MAX = 10**12
REPLAY_DEFAULT_LIMIT = 100
REPLAY_MAX_LIMIT = 500
_MILLISECONDS = re.compile(r"-?[0-9]{1,13}")
_MS_SCHEMA = {"type": "integer", "minimum": -REPLAY_MS_MAX, "maximum": REPLAY_MS_MAX}


def parse_ms(value: str | None, name: str) -> int:
    """A required query parameter that is a whole number of milliseconds in
    range (ASCII digits and an optional minus: no "+5", " 5", "5.0" or "1e3")."""
    if value is None or not _MILLISECONDS.fullmatch(value) or not -REPLAY_MS_MAX <= int(value) <= REPLAY_MS_MAX:
        raise ServiceError(
            f"invalid_{name}",
            f"{name} must be a whole number of milliseconds from {-REPLAY_MS_MAX} to {REPLAY_MS_MAX}.",
        )
    return int(value)


class ReplayView(APIView):
    """Chat replay: the comments of a stretch of the video, by their offset_ms."""

    permission_classes = [IsAuthenticatedOrReadOnly]
    throttle_classes = [AnonIPThrottle]

    @extend_schema(
        operation_id="comments_replay",
        description="Visible comments with from_ms <= offset_ms < to_ms (offset_ms: milliseconds from the "
        "video's started_at), in offset order, ties in stream order; for live and ended videos. Held and removed "
        "comments never appear (a removal made after the end too), nor comments without an offset_ms (posted "
        "while the video had no started_at). To continue, ask again with from_ms=next_from_ms and after=cursor.",
        parameters=[
            OpenApiParameter("from_ms", _MS_SCHEMA, required=True, description="Start of the range (inclusive)"),
            OpenApiParameter(
                "to_ms",
                _MS_SCHEMA,
                required=True,
                description="End of the range (exclusive); before from_ms: 400 invalid_range",
            ),
            OpenApiParameter(
                "after",
                CURSOR_SCHEMA,
                description="The cursor of the previous page: continue after it among comments at offset from_ms",
            ),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": REPLAY_MAX_LIMIT, "default": REPLAY_DEFAULT_LIMIT},
                description=f"1..{REPLAY_MAX_LIMIT}, default {REPLAY_DEFAULT_LIMIT}; anything else is 400 invalid_limit",
            ),
        ],
        responses={200: ReplayPageSerializer, **ERRORS},
    )
    def get(self, request, video_id: int):
        from_ms = parse_ms(request.query_params.get("from_ms"), "from_ms")
        to_ms = parse_ms(request.query_params.get("to_ms"), "to_ms")
        if to_ms < from_ms:
            raise ServiceError("invalid_range", f"to_ms ({to_ms}) is before from_ms ({from_ms}).")
        after = parse_cursor(request.query_params.get("after"), "after")
        limit = parse_int(request.query_params.get("limit"), "limit", REPLAY_DEFAULT_LIMIT, 1, REPLAY_MAX_LIMIT)
        video = get_video(video_id)
        try:
            page = queries.replay_page(video.pk, from_ms, to_ms, limit, after)
        except DatabaseError as exc:
            raise Unavailable("database") from exc
        last = page.results[-1] if page.has_more else None
        return Response(
            {
                "results": page.results,
                "has_more": page.has_more,
                "next_from_ms": last["offset_ms"] if last is not None else to_ms,
                "cursor": last["cursor"] if last is not None else None,
            }
        )


class CommentDetailView(APIView):
    throttle_classes = [AnonIPThrottle]

    def get_comment(self, comment_id: int) -> Comment:
        try:
            return Comment.objects.in_stream().select_related("author", "video").get(pk=comment_id)
        except Comment.DoesNotExist:
            raise ServiceError("not_found", f"No comment {comment_id}.", 404) from None

    @extend_schema(operation_id="comments_retrieve", responses={200: OwnCommentSerializer, **ERRORS})
    def get(self, request, comment_id: int):
        comment = self.get_comment(comment_id)
        if comment.status != Comment.Status.VISIBLE and not (
            request.user.is_authenticated
            and (comment.author_id == request.user.pk or services.can_moderate(request.user, comment.video))
        ):
            raise ServiceError("not_found", f"No comment {comment_id}.", 404)
        return Response(comment_json(comment))

    @extend_schema(
        operation_id="comments_destroy",
        description="Removes the comment for everyone watching; its author and the video's moderators still "
        "read it (GET) with status removed, as the moderation log does.",
        responses={204: None, **ERRORS},
    )
    def delete(self, request, comment_id: int):
        comment = self.get_comment(comment_id)
        services.delete_own_comment(comment, request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
