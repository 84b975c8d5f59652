from rest_framework import serializers

from videos.models import Video


class VideoSerializer(serializers.ModelSerializer):
    class Meta:
        model = Video
        fields = [
            "id",
            "title",
            "description",
            "stream_url",
            "poster_url",
            "state",
            "slow_mode_seconds",
            "comments_enabled",
            "created",
            "started_at",
            "ended_at",
        ]
        read_only_fields = fields
