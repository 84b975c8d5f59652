from django.conf import settings
from django.db import models


class VideoQuerySet(models.QuerySet):
    def live_first(self):
        """Live, then scheduled, then ended; newest first within each. In the
        query, so a slice keeps every live video however many others exist."""
        rank = models.Case(
            models.When(state=Video.State.LIVE, then=models.Value(0)),
            models.When(state=Video.State.SCHEDULED, then=models.Value(1)),
            default=models.Value(2),
            output_field=models.IntegerField(),
        )
        return self.order_by(rank, "-created", "-pk")


class Video(models.Model):
    class State(models.TextChoices):
        SCHEDULED = "scheduled"
        LIVE = "live"
        ENDED = "ended"

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    stream_url = models.CharField(max_length=500, blank=True, help_text="URL of the video or HLS stream")
    poster_url = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.SCHEDULED, db_index=True)
    slow_mode_seconds = models.PositiveIntegerField(default=0, help_text="0 = off")
    comments_enabled = models.BooleanField(default=True)
    moderators = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="moderated_videos",
        help_text="Users who may moderate this video (staff may moderate every video).",
    )
    # Who is "host" in the chat's role badges: the owner and the designated hosts.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_videos",
        help_text="Whose video this is: shown as host in the chat.",
    )
    hosts = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="hosted_videos",
        help_text="Users shown as host in the chat besides the owner (co-hosts, guests).",
    )
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = VideoQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.title

    @property
    def is_live(self) -> bool:
        return self.state == self.State.LIVE

    def get_absolute_url(self) -> str:
        return f"/videos/{self.pk}/"
