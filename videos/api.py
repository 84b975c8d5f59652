from django.db import DatabaseError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from comments.api import ERRORS, get_video
from livecomment.errors import ServiceError, Unavailable
from livecomment.throttling import AnonIPThrottle
from videos.models import Video
from videos.serializers import VideoSerializer

LIST_MAX = 500


class VideoListView(APIView):
    throttle_classes = [AnonIPThrottle]

    @extend_schema(
        operation_id="videos_list",
        parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=[s.value for s in Video.State])],
        responses={200: VideoSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        videos = Video.objects.all()
        state = request.query_params.get("state")
        if state:  # absent or empty: every state
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
