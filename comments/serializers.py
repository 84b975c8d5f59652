from typing import get_args

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from comments.events import Role
from livecomment.lib.errors import ERROR_CODE_CHOICES


class AuthorSerializer(serializers.Serializer):
    """The author of a comment."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=list(get_args(Role))),
        help_text="The author's roles in the video when they posted (for badges), in this order: "
        "host (the video's owner or a designated host), moderator (of the video), staff (of the site); "
        "empty for a viewer",
    )


class UserRefSerializer(serializers.Serializer):
    """A user as the moderation API names them: who reported, banned, acted."""

    id = serializers.IntegerField()
    name = serializers.CharField(help_text="Username")


class ReportedCommentSerializer(serializers.Serializer):
    """The comment a report is about, as a moderator's queue shows it."""

    id = serializers.IntegerField()
    cursor = serializers.CharField(help_text="Stream position of the comment")
    text = serializers.CharField()
    status = serializers.ChoiceField(choices=["visible", "held", "removed"])
    author = AuthorSerializer()


class CommentSerializer(serializers.Serializer):
    """A comment as clients see it (the same object as the `comment` event's data)."""

    id = serializers.IntegerField()
    cursor = serializers.CharField(help_text="Stream position: pass as after= / before= / Last-Event-ID")
    video = serializers.IntegerField()
    author = AuthorSerializer()
    text = serializers.CharField()
    created = serializers.DateTimeField()
    global_id = serializers.CharField(
        help_text='"<origin region>:<id there>": the same in every region; deduplicate by it when switching regions'
    )
    offset_ms = serializers.IntegerField(
        allow_null=True,
        help_text="Milliseconds from the video's started_at to the comment (negative before it; the same in every "
        "region); null when the video had no started_at when it was posted. Chat replay: /replay/",
    )


class OwnCommentSerializer(CommentSerializer):
    status = serializers.ChoiceField(choices=["visible", "held", "removed"])


class CommentPageSerializer(serializers.Serializer):
    results = CommentSerializer(many=True)
    cursor = serializers.CharField(
        allow_null=True,
        help_text="Continue from here in the direction asked (after= or before=); null on an empty first page",
    )
    next_cursor = serializers.CharField(help_text="Pass as after= to catch up on newer comments")
    prev_cursor = serializers.CharField(allow_null=True, help_text="Pass as before= for older comments")
    has_more = serializers.BooleanField(help_text="More comments exist in the direction asked")


class ReplayPageSerializer(serializers.Serializer):
    """Comments by their time in the video (chat replay)."""

    results = CommentSerializer(many=True, help_text="In offset_ms order; ties in stream order")
    has_more = serializers.BooleanField(help_text="More comments before to_ms: continue with next_from_ms and cursor")
    next_from_ms = serializers.IntegerField(
        help_text="Pass as from_ms= to continue: the last comment's offset_ms when has_more, else to_ms"
    )
    cursor = serializers.CharField(
        allow_null=True,
        help_text="Pass as after= with from_ms=next_from_ms to continue among comments of the same offset_ms "
        "(none lost or repeated); null when the range is done",
    )


class PostCommentSerializer(serializers.Serializer):
    # Validated by comments.services.clean_text so every transport gives the
    # same answer; here only for the schema.
    text = serializers.CharField(help_text="1 to 500 characters after stripping; newlines allowed")


@extend_schema_field(
    {
        "oneOf": [
            {"type": "object", "additionalProperties": True, "description": "invalid: field -> messages"},
            {"type": "array", "items": {"type": "string"}, "description": "unknown_fields: the names refused"},
        ]
    }
)
class ErrorFieldsField(serializers.Field):
    pass


class ErrorObjectSerializer(serializers.Serializer):
    """The `error` member of every error answer (livecomment.lib.errors)."""

    code = serializers.ChoiceField(choices=ERROR_CODE_CHOICES, help_text="What went wrong; stable, for programs")
    message = serializers.CharField(help_text="What went wrong, for people")
    retry_after = serializers.IntegerField(
        required=False, min_value=1, help_text="throttled, slow_mode, too_many_*, banned (a time-out): seconds to wait"
    )
    fields = ErrorFieldsField(required=False, help_text="invalid / unknown_fields: which fields")
    max_length = serializers.IntegerField(required=False, help_text="too_long: the limit in characters")
    max_bytes = serializers.IntegerField(required=False, help_text="body_too_large, headers_too_large: the limit")
    ends_at = serializers.DateTimeField(required=False, allow_null=True, help_text="banned: when it ends (null: never)")
    allowed = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="invalid_state_transition: the states it can become"
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorObjectSerializer()
