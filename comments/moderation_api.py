"""Moderator endpoints (and reporting, for any signed-in user). Thin: parse, call services, render."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from comments import services
from comments.api import ERRORS
from comments.events import comment_json, timestamp
from comments.models import Ban, Comment, ModerationAction, Report
from comments.serializers import (
    CommentSerializer,
    OwnCommentSerializer,
    ReportedCommentSerializer,
    UserRefSerializer,
)
from comments.services import pins
from livecomment.lib.errors import ServiceError
from livecomment.lib.parsers import strict_body
from livecomment.lib.throttling import AnonIPThrottle, ReportThrottle
from videos.lookups import get_video


def get_comment(comment_id: int) -> Comment:
    try:
        return Comment.objects.in_stream().select_related("author", "video").get(pk=comment_id)
    except Comment.DoesNotExist:
        raise ServiceError("not_found", f"No comment {comment_id}.", 404) from None


def body_of(request, serializer_class) -> dict:
    """The JSON object of the request, with only the fields `serializer_class` declares."""
    return strict_body(request.data, serializer_class)


def storable(value: str) -> bool:
    """Text a database can hold: no NUL (PostgreSQL refuses it) and no lone
    surrogate (not UTF-8; every driver refuses it). Either was a 500."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def optional_reason(body: dict) -> str:
    reason = body.get("reason", "")
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise ServiceError("invalid_reason", "reason must be a string.")
    if not storable(reason):
        raise ServiceError("invalid_reason", "reason must be text without NUL characters or lone surrogates.")
    if len(reason) > services.REASON_MAX:
        raise ServiceError("invalid_reason", f"reason is at most {services.REASON_MAX} characters long.")
    return reason


class ModerateRequest(serializers.Serializer):
    action = serializers.ChoiceField(choices=services.MODERATE_ACTIONS)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=services.REASON_MAX)


class ModerateView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="comments_moderate", request=ModerateRequest, responses={200: OwnCommentSerializer, **ERRORS}
    )
    def post(self, request, comment_id: int):
        body = body_of(request, ModerateRequest)
        action = body.get("action")
        if action not in services.MODERATE_ACTIONS:
            raise ServiceError("invalid_action", f"action must be one of {', '.join(services.MODERATE_ACTIONS)}.")
        comment = get_comment(comment_id)
        comment = services.moderate_comment(comment, request.user, action, optional_reason(body))
        return Response(comment_json(comment))


class ReportRequest(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=services.REASON_MAX)


class ReportResponse(serializers.Serializer):
    id = serializers.IntegerField()
    comment = serializers.IntegerField()
    reason = serializers.CharField()
    created = serializers.DateTimeField()


class ReportView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [AnonIPThrottle, ReportThrottle]

    @extend_schema(operation_id="comments_report", request=ReportRequest, responses={201: ReportResponse, **ERRORS})
    def post(self, request, comment_id: int):
        body = body_of(request, ReportRequest)
        comment = get_comment(comment_id)
        report = services.report_comment(comment, request.user, optional_reason(body))
        return Response(
            {"id": report.pk, "comment": comment.pk, "reason": report.reason, "created": timestamp(report.created)},
            status=status.HTTP_201_CREATED,
        )


class BanSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    user = UserRefSerializer()
    video = serializers.IntegerField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.CharField()
    created = serializers.DateTimeField()
    by = UserRefSerializer(allow_null=True, help_text="The moderator who banned; null once their account is gone")


# Longer is permanent (null); a date past year 9999 cannot even be stored.
MAX_BAN_SECONDS = 10 * 365 * 86400


@extend_schema_field({"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "minLength": 1}]})
class UserIdOrNameField(serializers.Field):
    """Schema only: find_user reads the value (an id or a username)."""


class BanRequest(serializers.Serializer):
    user = UserIdOrNameField(help_text="The user to ban: their id (integer) or their username (string)")
    duration_seconds = serializers.IntegerField(
        allow_null=True, required=False, min_value=1, max_value=MAX_BAN_SECONDS, help_text="null = permanent"
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=services.REASON_MAX)
    remove_comments = serializers.BooleanField(required=False, help_text="Also remove their comments of the last hour")


def ban_json(ban: Ban) -> dict:
    return {
        "id": ban.pk,
        "user": {"id": ban.user_id, "name": ban.user.get_username()},
        "video": ban.video_id,
        "expires_at": timestamp(ban.expires_at) if ban.expires_at else None,
        "reason": ban.reason,
        "created": timestamp(ban.created),
        "by": {"id": ban.created_by_id, "name": ban.created_by.get_username()} if ban.created_by else None,
    }


def find_user(value):
    User = get_user_model()
    if isinstance(value, bool) or value is None:
        raise ServiceError("invalid_user", "user must be a user id or username.")
    try:
        if isinstance(value, int):
            return User.objects.get(pk=value)
        if isinstance(value, str) and value and storable(value):
            return User.objects.get(**{User.USERNAME_FIELD: value})
    except User.DoesNotExist:
        raise ServiceError("user_not_found", f"No user {value!r}.", 404) from None
    raise ServiceError("invalid_user", "user must be a user id or username.")


class BanListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="bans_list",
        responses={200: inline_serializer("BanList", {"results": BanSerializer(many=True)}), **ERRORS},
    )
    def get(self, request, video_id: int):
        video = get_video(video_id)
        services.require_moderator(request.user, video)
        from django.db.models import Q
        from django.utils import timezone

        bans = (
            Ban.objects.filter(video=video, lifted_at__isnull=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
            .select_related("user", "created_by")
        )
        return Response({"results": [ban_json(b) for b in bans]})

    @extend_schema(operation_id="bans_create", request=BanRequest, responses={201: BanSerializer, **ERRORS})
    def post(self, request, video_id: int):
        body = body_of(request, BanRequest)
        video = get_video(video_id)
        services.require_moderator(request.user, video)
        if "user" not in body:
            raise ServiceError("missing_user", 'The body needs a "user" (id or username).')
        duration = body.get("duration_seconds")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int) or duration > MAX_BAN_SECONDS
        ):
            raise ServiceError(
                "invalid_duration",
                f"duration_seconds must be a whole number from 1 to {MAX_BAN_SECONDS} (ten years), or null.",
            )
        remove = body.get("remove_comments", False)
        if not isinstance(remove, bool):
            raise ServiceError("invalid_remove_comments", "remove_comments must be true or false.")
        user = find_user(body["user"])
        ban = services.ban_user(video, user, request.user, duration, optional_reason(body), remove_recent=remove)
        return Response(ban_json(ban), status=status.HTTP_201_CREATED)


class BanDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="bans_destroy", responses={204: None, **ERRORS})
    def delete(self, request, video_id: int, user_id: int):
        video = get_video(video_id)
        services.require_moderator(request.user, video)
        user = find_user(user_id)
        if not services.lift_ban(video, user, request.user):
            raise ServiceError("not_found", "That user has no active ban here.", 404)
        return Response(status=status.HTTP_204_NO_CONTENT)


def action_json(row: ModerationAction) -> dict:
    return {
        "id": row.pk,
        "action": row.action,
        "actor": {"id": row.actor_id, "name": row.actor.get_username()} if row.actor else None,
        "comment": row.comment_id,
        "target_user": {"id": row.target_user_id, "name": row.target_user.get_username()} if row.target_user else None,
        "reason": row.reason,
        "details": row.details,
        "created": timestamp(row.created),
    }


class ModerationActionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.CharField()
    actor = UserRefSerializer(allow_null=True)
    comment = serializers.IntegerField(allow_null=True)
    target_user = UserRefSerializer(allow_null=True)
    reason = serializers.CharField()
    details = serializers.DictField()
    created = serializers.DateTimeField()


class ModerationLogView(APIView):
    permission_classes = [IsAuthenticated]
    throttle_classes = [AnonIPThrottle]

    @extend_schema(
        operation_id="moderation_log",
        responses={
            200: inline_serializer("ModerationLog", {"results": ModerationActionSerializer(many=True)}),
            **ERRORS,
        },
    )
    def get(self, request, video_id: int):
        video = get_video(video_id)
        services.require_moderator(request.user, video)
        rows = (
            ModerationAction.objects.filter(video=video)
            .select_related("actor", "target_user")
            .order_by("-created", "-id")[:100]
        )
        return Response({"results": [action_json(r) for r in rows]})


class HeldQueueView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="held_list",
        responses={200: inline_serializer("HeldList", {"results": OwnCommentSerializer(many=True)}), **ERRORS},
    )
    def get(self, request, video_id: int):
        video = get_video(video_id)
        services.require_moderator(request.user, video)
        held = Comment.objects.in_stream().filter(video=video, status=Comment.Status.HELD).select_related("author")
        return Response({"results": [comment_json(c) for c in held.order_by("position")[:200]]})


# -- reports: the queue moderators work through ------------------------------------


def report_json(report: Report) -> dict:
    comment = report.comment
    return {
        "id": report.pk,
        "comment": {
            "id": comment.pk,
            "cursor": comment.cursor,
            "text": comment.text,
            "status": comment.status,
            "author": {
                "id": comment.author_id,
                "name": comment.author.get_username(),
                "roles": comment.author_roles.split(),
            },
        },
        "reporter": {"id": report.reporter_id, "name": report.reporter.get_username()},
        "reason": report.reason,
        "created": timestamp(report.created),
        "resolved": report.resolved,
        "resolved_by": (
            {"id": report.resolved_by_id, "name": report.resolved_by.get_username()} if report.resolved_by else None
        ),
        "resolved_at": timestamp(report.resolved_at) if report.resolved_at else None,
    }


class ReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    comment = ReportedCommentSerializer()
    reporter = UserRefSerializer()
    reason = serializers.CharField()
    created = serializers.DateTimeField()
    resolved = serializers.BooleanField()
    resolved_by = UserRefSerializer(allow_null=True)
    resolved_at = serializers.DateTimeField(allow_null=True)


def _reports():
    return Report.objects.filter(comment__position__isnull=False).select_related(
        "comment__author", "comment__video", "reporter", "resolved_by"
    )


class ReportListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="reports_list",
        parameters=[
            OpenApiParameter(
                "resolved",
                {"type": "string", "enum": ["0", "1"]},
                description="0 (default): the open reports; 1: the resolved ones",
            )
        ],
        responses={200: inline_serializer("ReportList", {"results": ReportSerializer(many=True)}), **ERRORS},
    )
    def get(self, request, video_id: int):
        resolved = request.query_params.get("resolved", "0")
        if resolved not in ("0", "1"):
            raise ServiceError("invalid_resolved", "resolved must be 0 or 1.")
        video = get_video(video_id)
        services.require_moderator(request.user, video)
        reports = _reports().filter(comment__video=video, resolved=resolved == "1").order_by("-created", "-id")[:200]
        return Response({"results": [report_json(r) for r in reports]})


class ReportResolveView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="reports_resolve", request=ReportRequest, responses={200: ReportSerializer, **ERRORS})
    def post(self, request, report_id: int):
        body = body_of(request, ReportRequest)
        reason = optional_reason(body)
        report = _reports().filter(pk=report_id).first() if 0 < report_id < 2**63 else None
        if report is None:
            raise ServiceError("not_found", f"No report {report_id}.", 404)
        return Response(report_json(services.resolve_report(report, request.user, reason)))


class PinRequest(serializers.Serializer):
    comment = serializers.IntegerField(required=False, help_text="Pin this comment of the video (or give text)")
    text = serializers.CharField(required=False, help_text="An announcement, bounded like a comment's text")
    duration_s = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=pins.PIN_MAX_SECONDS,
        help_text="With text: seconds until the announcement runs out; absent or null: until unpinned",
    )


class PinSerializer(serializers.Serializer):
    comment = CommentSerializer(allow_null=True, help_text="The pinned comment; null for an announcement")
    text = serializers.CharField(allow_null=True, help_text="The announcement; null when a comment is pinned")
    by = UserRefSerializer(help_text="The moderator who pinned it")
    expires = serializers.DateTimeField(allow_null=True, help_text="null: until unpinned")
    cursor = serializers.CharField(help_text="The `pin` event's stream position: names this pin")


class PinView(APIView):
    """The video's pin: a comment or an announcement (moderators of the video)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="pin_set", request=PinRequest, responses={200: PinSerializer, **ERRORS})
    def put(self, request, video_id: int):
        body = body_of(request, PinRequest)
        video = get_video(video_id)
        services.require_moderator(request.user, video)
        if ("comment" in body) == ("text" in body) or ("duration_s" in body and "text" not in body):
            raise ServiceError("invalid_pin", 'Give exactly one of "comment" (an id) or "text" (with "duration_s").')
        if "comment" in body:
            comment_id = body["comment"]
            if isinstance(comment_id, bool) or not isinstance(comment_id, int) or not 0 < comment_id < 2**63:
                raise ServiceError("invalid_comment", '"comment" must be a comment id.')
            pin = pins.pin_comment(video, request.user, get_comment(comment_id))
        else:
            pin = pins.pin_announcement(video, request.user, body["text"], body.get("duration_s"))
        return Response(json.loads(pin.data))

    @extend_schema(operation_id="pin_clear", responses={204: None, **ERRORS})
    def delete(self, request, video_id: int):
        video = get_video(video_id)
        pins.unpin(video, request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
