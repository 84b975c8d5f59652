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

    objects = CommentQuerySet.as_manager()

    class Meta:
        ordering = ["video", "position"]
        constraints = [
            models.UniqueConstraint(fields=["video", "cursor"], name="comment_cursor_unique_per_video"),
        ]
        indexes = [
            models.Index(fields=["video", "position"], name="comment_video_position"),
            models.Index(fields=["video", "status_position"], name="comment_video_status_pos"),
            models.Index(fields=["author", "idempotency_key"], name="comment_author_idem"),
        ]

    def __str__(self) -> str:
        return f"{self.author} on {self.video_id}: {self.text[:40]}"

    def set_cursor(self, cursor: str) -> None:
        self.cursor = cursor
        self.position = cursors.to_position(cursor)
