"""Django admin for comments and moderation. Every action goes through comments.services,
so it is audited and reaches viewers live, exactly like the API."""

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef

from comments import services
from comments.models import Ban, BlockedTerm, Comment, ModerationAction, Report
from livecomment.lib.errors import ServiceError


class ReportedFilter(admin.SimpleListFilter):
    title = "reported"
    parameter_name = "reported"

    def lookups(self, request, model_admin):
        return [("open", "Open reports"), ("any", "Any report")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(Exists(Report.objects.filter(comment=OuterRef("pk"), resolved=False)))
        if self.value() == "any":
            return queryset.filter(Exists(Report.objects.filter(comment=OuterRef("pk"))))
        return queryset


def _each(modeladmin, request, queryset, do, done: str):
    count = 0
    for obj in queryset:
        try:
            do(obj)
            count += 1
        except ServiceError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.WARNING)
    if count:
        modeladmin.message_user(request, f"{done}: {count}.", messages.SUCCESS)


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["id", "short_text", "author", "video", "status", "created"]
    list_filter = ["status", ReportedFilter, "video"]
    list_select_related = ["author", "video"]
    search_fields = ["text", "author__username"]
    readonly_fields = [
        "video",
        "author",
        "text",
        "created",
        "status",
        "cursor",
        "position",
        "status_position",
        "idempotency_key",
    ]
    actions = ["remove", "restore", "approve", "timeout_author", "ban_author"]
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="text")
    def short_text(self, obj):
        return obj.text[:80]

    def has_add_permission(self, request):
        return False  # comments are posted through the write path, not typed into the admin

    def has_delete_permission(self, request, obj=None):
        return False  # remove instead: it is audited and reaches viewers

    @admin.action(description="Remove selected comments")
    def remove(self, request, queryset):
        _each(self, request, queryset, lambda c: services.moderate_comment(c, request.user, "remove"), "Removed")

    @admin.action(description="Restore selected removed comments")
    def restore(self, request, queryset):
        _each(
            self,
            request,
            queryset.filter(status=Comment.Status.REMOVED),
            lambda c: services.moderate_comment(c, request.user, "restore"),
            "Restored",
        )

    @admin.action(description="Approve selected held comments")
    def approve(self, request, queryset):
        _each(
            self,
            request,
            queryset.filter(status=Comment.Status.HELD),
            lambda c: services.moderate_comment(c, request.user, "approve"),
            "Approved",
        )

    @admin.action(description="Time out the authors for 10 minutes (in that video)")
    def timeout_author(self, request, queryset):
        pairs = {(c.video_id, c.author_id): c for c in queryset.select_related("author", "video")}
        _each(
            self,
            request,
            pairs.values(),
            lambda c: services.ban_user(c.video, c.author, request.user, 600, "admin time-out"),
            "Timed out",
        )

    @admin.action(description="Ban the authors (in that video, permanently)")
    def ban_author(self, request, queryset):
        pairs = {(c.video_id, c.author_id): c for c in queryset.select_related("author", "video")}
        _each(
            self,
            request,
            pairs.values(),
            lambda c: services.ban_user(c.video, c.author, request.user, None, "admin ban"),
            "Banned",
        )


@admin.register(Ban)
class BanAdmin(admin.ModelAdmin):
    list_display = ["user", "video", "expires_at", "lifted_at", "reason", "created_by", "created"]
    list_select_related = ["user", "video", "created_by"]
    list_filter = ["video"]
    search_fields = ["user__username", "reason"]
    fields = ["user", "video", "expires_at", "reason"]
    raw_id_fields = ["user"]
    actions = ["lift"]

    def has_change_permission(self, request, obj=None):
        return obj is None  # bans are created or lifted, not edited

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        from django.utils import timezone

        duration = None
        if obj.expires_at is not None:
            duration = max(1, int((obj.expires_at - timezone.now()).total_seconds()))
        try:
            ban = services.ban_user(obj.video, obj.user, request.user, duration, obj.reason)
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        obj.pk = ban.pk

    @admin.action(description="Lift selected bans")
    def lift(self, request, queryset):
        _each(self, request, queryset, lambda b: services.lift_ban(b.video, b.user, request.user), "Lifted")


@admin.register(BlockedTerm)
class BlockedTermAdmin(admin.ModelAdmin):
    list_display = ["term", "regex", "action", "video", "created_by", "created"]
    list_select_related = ["video", "created_by"]
    list_filter = ["action", "video"]
    search_fields = ["term"]
    fields = ["term", "regex", "action", "video"]

    def save_model(self, request, obj, form, change):
        try:
            services.save_blocked_term(obj, request.user)
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def delete_model(self, request, obj):
        services.delete_blocked_term(obj, request.user)

    def delete_queryset(self, request, queryset):
        for term in queryset:
            services.delete_blocked_term(term, request.user)


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["id", "comment_text", "reporter", "reason", "resolved", "created"]
    list_select_related = ["comment", "reporter"]
    list_filter = ["resolved"]
    search_fields = ["reason", "comment__text", "reporter__username"]
    readonly_fields = ["comment", "reporter", "reason", "created", "resolved", "resolved_by", "resolved_at"]
    actions = ["resolve"]

    @admin.display(description="comment")
    def comment_text(self, obj):
        return obj.comment.text[:60]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Resolve selected reports")
    def resolve(self, request, queryset):
        _each(
            self,
            request,
            queryset.select_related("comment__video"),
            lambda r: services.resolve_report(r, request.user),
            "Resolved",
        )


@admin.register(ModerationAction)
class ModerationActionAdmin(admin.ModelAdmin):
    list_display = ["created", "actor", "action", "video", "comment_id", "target_user", "reason"]
    list_select_related = ["actor", "video", "target_user"]
    list_filter = ["action", "video"]
    search_fields = ["actor__username", "target_user__username", "reason"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
