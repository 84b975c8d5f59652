from django.contrib import admin, messages

from comments import services
from livecomment.lib.errors import ServiceError
from videos.models import Video


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ["title", "state", "slow_mode_seconds", "comments_enabled", "created"]
    list_filter = ["state", "comments_enabled"]
    search_fields = ["title"]
    filter_horizontal = ["moderators", "hosts"]
    raw_id_fields = ["owner"]
    fields = [
        "title",
        "description",
        "stream_url",
        "poster_url",
        "state",
        "slow_mode_seconds",
        "comments_enabled",
        "owner",
        "hosts",
        "moderators",
    ]

    def save_model(self, request, obj, form, change):
        """Moderation fields go through the write path (audited, announced live)."""
        live_fields = {f: form.cleaned_data[f] for f in services.VIDEO_FIELDS if f in form.changed_data}
        if not change:
            super().save_model(request, obj, form, change)
            return
        current = Video.objects.get(pk=obj.pk)
        for field in live_fields:
            setattr(obj, field, getattr(current, field))
        super().save_model(request, obj, form, change)
        if live_fields:
            try:
                services.update_video(
                    obj,
                    request.user,
                    slow_mode_seconds=live_fields.get("slow_mode_seconds", services.UNSET),
                    comments_enabled=live_fields.get("comments_enabled", services.UNSET),
                    state=live_fields.get("state", services.UNSET),
                )
            except ServiceError as exc:
                self.message_user(request, exc.message, messages.ERROR)
