from django.conf import settings
from django.db import models

from comments import cursors


class CommentQuerySet(models.QuerySet):
    def in_stream(self):
        """Comments whose stream append completed (the only ones that exist to readers)."""
        return self.filter(position__isnull=False)

    def visible(self):
        return self.in_stream().filter(status=Comment.Status.VISIBLE)


class Comment(models.Model):
    class Status(models.TextChoices):
        VISIBLE = "visible"
        HELD = "held"
        REMOVED = "removed"

    video = models.ForeignKey("videos.Video", on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments")
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.VISIBLE)
    # The Redis stream ID of the comment's event ("<ms>-<seq>"), and the same
    # as one sortable integer (comments/cursors.py). Set inside the write
    # transaction, so a committed comment always has both.
    cursor = models.CharField(max_length=32, null=True, blank=True, editable=False)
    position = models.BigIntegerField(null=True, blank=True, editable=False)
    # Stream position of the latest status change (removal, restore), so that
    # catch-up from the database can replay removals a client missed.
    status_position = models.BigIntegerField(null=True, blank=True, editable=False)
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    # Where the comment was posted (regions/, ARCHITECTURE.md "Several regions"):
    # "" = this region; else the origin region's name and the comment's id there.
    origin_region = models.CharField(max_length=32, blank=True, default="", editable=False)
    origin_id = models.BigIntegerField(null=True, blank=True, editable=False)
    # Milliseconds from the video's started_at to the comment's creation in its
    # origin region (negative before the start). Set once on the write path
    # (comments/services/store.py), copied from the origin by region ingest,
    # never recomputed; null when the video had no started_at at the time.
    offset_ms = models.BigIntegerField(null=True, blank=True, editable=False)

    # The author's roles in the video when they posted ("host moderator staff",
    # space-separated, in that order; "" for a plain viewer), set on the write
    # path from cached data so that reads and fan-out never look them up; from
    # another region: as the origin stored them.
    author_roles = models.CharField(max_length=64, blank=True, default="", editable=False)

    objects = CommentQuerySet.as_manager()

    class Meta:
        ordering = ["video", "position"]
        constraints = [
            models.UniqueConstraint(fields=["video", "cursor"], name="comment_cursor_unique_per_video"),
            # A comment from another region is stored once, however often it is relayed.
            models.UniqueConstraint(
                fields=["origin_region", "origin_id"],
                condition=~models.Q(origin_region=""),
                name="comment_origin_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["video", "position"], name="comment_video_position"),
            models.Index(fields=["video", "status_position"], name="comment_video_status_pos"),
            models.Index(fields=["author", "idempotency_key"], name="comment_author_idem"),
            # Chat replay: a range of offsets in order, ties by position (comments/queries.py).
            models.Index(fields=["video", "offset_ms", "position"], name="comment_video_offset"),
        ]

    def __str__(self) -> str:
        return f"{self.author} on {self.video_id}: {self.text[:40]}"

    @property
    def global_id(self) -> str:
        """ "<origin region>:<id there>": the same in every region (clients deduplicate by it)."""
        if self.origin_region:
            return f"{self.origin_region}:{self.origin_id}"
        return f"{settings.REGION}:{self.pk}"

    def set_cursor(self, cursor: str) -> None:
        self.cursor = cursor
        self.position = cursors.to_position(cursor)


class Ban(models.Model):
    """A user may not post in one video (or anywhere, with no video) until expires_at (None = for good)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bans")
    video = models.ForeignKey(
        "videos.Video",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="bans",
        help_text="Empty: banned site-wide",
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: permanent")
    reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["user", "video"], name="ban_user_video")]

    def __str__(self) -> str:
        where = f"video {self.video_id}" if self.video_id else "site-wide"
        until = self.expires_at.isoformat() if self.expires_at else "permanent"
        return f"{self.user} banned ({where}, {until})"

    @property
    def is_active(self) -> bool:
        from django.utils import timezone

        return self.lifted_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class BlockedTerm(models.Model):
    class Action(models.TextChoices):
        HOLD = "hold", "Hold for review"
        REJECT = "reject", "Reject"

    term = models.CharField(
        max_length=200, help_text="Matched case-insensitively; a regular expression if 'regex' is set"
    )
    regex = models.BooleanField(default=False)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.HOLD)
    video = models.ForeignKey(
        "videos.Video",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="blocked_terms",
        help_text="Empty: applies to every video",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["term"]

    def __str__(self) -> str:
        return f"{self.term} ({self.action})"


class Report(models.Model):
    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports")
    reason = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    resolved = models.BooleanField(default=False, db_index=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["comment", "reporter"], name="one_report_per_user")]

    def __str__(self) -> str:
        return f"report of comment {self.comment_id} by {self.reporter}"


class ModerationAction(models.Model):
    """The audit log: one row per moderation action, never changed or deleted."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=32, db_index=True)
    video = models.ForeignKey("videos.Video", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    comment = models.ForeignKey(Comment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} at {self.created:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("the moderation log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("the moderation log is append-only")


class Pin(models.Model):
    """The current pin of a video: one of its comments, or an announcement
    (text), until `expires_at` (None: until unpinned). At most one per video;
    pinning another replaces it, unpinning deletes it, and a past `expires_at`
    counts as no pin (cleared lazily, at the next pin or unpin)."""

    video = models.OneToOneField("videos.Video", primary_key=True, on_delete=models.CASCADE, related_name="+")
    comment = models.ForeignKey(Comment, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    text = models.TextField(blank=True, default="")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The `pin` event's stream position and data (JSON text, "cursor" included):
    # what a stream open sends first, as it was announced.
    cursor = models.CharField(max_length=32, editable=False)
    data = models.TextField(editable=False)

    def __str__(self) -> str:
        return f"pin of video {self.video_id}: " + (f"comment {self.comment_id}" if self.comment_id else self.text)
