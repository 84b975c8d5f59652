from django.db import DatabaseError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from comments.api import ERRORS
from livecomment.lib.errors import ServiceError, Unavailable
from livecomment.lib.parsers import strict_body
from livecomment.lib.throttling import AnonIPThrottle
from videos.lookups import get_video
from videos.models import Video
from videos.serializers import VideoSerializer

LIST_MAX = 500


class VideoUpdateSerializer(serializers.Serializer):
    slow_mode_seconds = serializers.IntegerField(required=False, min_value=0, max_value=86400)
    comments_enabled = serializers.BooleanField(required=False)
    state = serializers.ChoiceField(choices=Video.State.choices, required=False)


class VideoListView(APIView):
    throttle_classes = [AnonIPThrottle]

    @extend_schema(
        operation_id="videos_list",
        parameters=[
            OpenApiParameter(
                "state",
                OpenApiTypes.STR,
                enum=[s.value for s in Video.State],
                description="Only videos in this state; absent: every state (empty or anything else: 400 invalid_state)",
            )
        ],
        responses={200: inline_serializer("VideoList", {"results": VideoSerializer(many=True)}), **ERRORS},
    )
    def get(self, request):
        videos = Video.objects.all()
        state = request.query_params.get("state")
        if state is not None:  # absent: every state; empty is not a state
            if state not in Video.State.values:
                raise ServiceError("invalid_state", f"state must be one of {', '.join(Video.State.values)}.")
            videos = videos.filter(state=state)
        try:
            rows = list(videos.live_first()[:LIST_MAX])
        except DatabaseError as exc:
            raise Unavailable("database") from exc
        return Response({"results": VideoSerializer(rows, many=True).data})


class VideoDetailView(APIView):
    throttle_classes = [AnonIPThrottle]

    @extend_schema(operation_id="videos_retrieve", responses={200: VideoSerializer, **ERRORS})
    def get(self, request, video_id: int):
        return Response(VideoSerializer(get_video(video_id)).data)

    @extend_schema(
        operation_id="videos_partial_update", request=VideoUpdateSerializer, responses={200: VideoSerializer, **ERRORS}
    )
    def patch(self, request, video_id: int):
        """Moderators: slow mode, comments on/off, state. Each change is audited and announced live."""
        from comments import services

        if not request.user.is_authenticated:
            raise ServiceError("not_authenticated", "Sign in first.", 401)
        body = strict_body(request.data, VideoUpdateSerializer)
        video = get_video(video_id)
        video = services.update_video(
            video,
            request.user,
            # Checked by the service, which says which field is wrong with its own code.
            slow_mode_seconds=body.get("slow_mode_seconds", services.UNSET),
            comments_enabled=body.get("comments_enabled", services.UNSET),
            state=body.get("state", services.UNSET),
        )
        return Response(VideoSerializer(video).data)
