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
            "owner",
        ]
        read_only_fields = fields
        extra_kwargs = {"owner": {"help_text": "Id of the user whose video this is (a host in the chat); null if none"}}
