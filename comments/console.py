"""The live moderation console: `/moderation/videos/<id>/`.

One page per video for the people who may moderate it (staff everywhere,
a video's own moderators there only). The page is a shell plus the state a
moderator needs at once (open reports, the held queue, the video's switches);
everything else comes from the same SSE stream viewers use -- moderators
also get `comment.held` and `report.created` on it -- and every action goes
through the moderator API, so the console does nothing the API cannot.

Two routes live here (included under /moderation/ by livecomment/urls.py):

* the page itself (GET);
* `reports/resolve/` (POST, JSON): dismiss open reports of a comment, through
  `services.resolve_report` (audited), with the page's session and CSRF token.
  (Apps use the moderator API: `GET /api/v1/videos/<id>/reports/`,
  `POST /api/v1/reports/<id>/resolve/`.)

All user text reaches the page as JSON in a `<script type="application/json">`
(Django's json_script escapes <, > and &) and is put in the DOM with
textContent by static/js/console.js: nothing a user typed is ever parsed as
HTML.
"""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import DatabaseError
from django.http import Http404, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from comments import services
from comments.events import comment_json, timestamp
from comments.models import Comment, Report
from dispatcher import viewer_count
from livecomment.lib import converters, parsers  # noqa: F401  (converters registers <id:>)
from livecomment.lib.errors import ServiceError, error_body
from livecomment.lib.parsers import strict_body
from videos.models import Video

OPEN_REPORTS_MAX = 200
HELD_MAX = 200
TIMEOUT_SECONDS = 600
RESOLVE_FIELDS = ("comment", "reason")


def _video_or_404(video_id: int) -> Video:
    video = Video.objects.filter(pk=video_id).first()
    if video is None:
        raise Http404(f"No video {video_id}.")
    return video


def report_json(report: Report) -> dict:
    return {
        "id": report.pk,
        "comment": report.comment_id,
        "comment_cursor": report.comment.cursor,
        "reporter": {"id": report.reporter_id, "name": report.reporter.get_username()},
        "reason": report.reason,
        "created": timestamp(report.created),
    }


def open_reports(video: Video) -> tuple[list[dict], dict[int, dict]]:
    """The newest open reports of the video, and the comments they are about."""
    reports = list(
        Report.objects.filter(comment__video=video, resolved=False, comment__position__isnull=False)
        .select_related("comment", "comment__author", "reporter")
        .order_by("-created", "-id")[:OPEN_REPORTS_MAX]
    )
    reported = {r.comment_id: comment_json(r.comment) for r in reports}
    return [report_json(r) for r in reversed(reports)], reported


def held_comments(video: Video) -> list[dict]:
    held = (
        Comment.objects.in_stream()
        .filter(video=video, status=Comment.Status.HELD)
        .select_related("author")
        .order_by("position")[:HELD_MAX]
    )
    return [comment_json(c) for c in held]


def moderator_ids(video: Video) -> list[int]:
    from videos.views import moderator_ids as ids  # the viewer page's list: staff + this video's moderators

    return ids(video)


@require_GET
@ensure_csrf_cookie
def moderation_console(request, video_id: int):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    video = _video_or_404(video_id)
    if not services.can_moderate(request.user, video):
        return render(request, "moderation/forbidden.html", {"video": video}, status=403)
    reports, reported = open_reports(video)
    user = request.user
    config = {
        "videoId": video.pk,
        "title": video.title,
        "state": video.state,
        "states": list(Video.State.values),
        "slowModeSeconds": video.slow_mode_seconds,
        "commentsEnabled": video.comments_enabled,
        "timeoutSeconds": TIMEOUT_SECONDS,
        "streamUrl": f"/api/v1/videos/{video.pk}/stream",
        "urls": {
            "moderate": "/api/v1/comments/{id}/moderate/",
            "comment": "/api/v1/comments/{id}/",
            "video": reverse("api-video", args=[video.pk]),
            "bans": reverse("api-bans", args=[video.pk]),
            "ban": f"/api/v1/videos/{video.pk}/bans/{{id}}/",
            "log": reverse("api-moderation-log", args=[video.pk]),
            "held": reverse("api-held", args=[video.pk]),
            "pin": reverse("api-pin", args=[video.pk]),
            "resolve": reverse("moderation-resolve-reports", args=[video.pk]),
            "viewer": video.get_absolute_url(),
            "login": f"{settings.LOGIN_URL}?next={quote(request.get_full_path())}",
        },
        "csrfToken": get_token(request),
        "user": {"id": user.pk, "name": user.get_username(), "staff": user.is_staff},
        "moderatorIds": moderator_ids(video),
        "held": held_comments(video),
        "reports": reports,
        "reportedComments": reported,
        "heartbeatSeconds": settings.REALTIME_HEARTBEAT_SECONDS,
        "viewers": viewer_count(video.pk) if video.is_live else 0,
    }
    context = {"video": video, "config": config}
    return render(request, "moderation/console.html", context)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON \ud800 escape
        return False
    return True


@require_POST
def resolve_reports(request, video_id: int):
    """Dismiss the open reports of one comment: {"comment": <id>} -> {"resolved": [report ids]}."""
    try:
        if not request.user.is_authenticated:
            raise ServiceError("not_authenticated", "Sign in first.", 401)
        video = Video.objects.filter(pk=video_id).first()
        if video is None:
            raise ServiceError("not_found", f"No video {video_id}.", 404)
        services.require_moderator(request.user, video)
        try:
            body = parsers.loads(request.body or b"{}")
        except ValueError:  # malformed, not UTF-8, or nested too deeply
            raise ServiceError("invalid_json", "The body must be JSON.") from None
        body = strict_body(body, RESOLVE_FIELDS)
        comment_id = body.get("comment")
        if isinstance(comment_id, bool) or not isinstance(comment_id, int) or not 0 < comment_id < 2**63:
            raise ServiceError("invalid_comment", 'The body needs a "comment" id.')
        reason = body.get("reason") or ""
        if not isinstance(reason, str) or "\x00" in reason or not _encodable(reason):
            raise ServiceError("invalid_reason", "reason must be a string of text.")
        if len(reason) > services.REASON_MAX:
            raise ServiceError("invalid_reason", f"reason is at most {services.REASON_MAX} characters long.")
        reports = Report.objects.filter(comment_id=comment_id, comment__video=video, resolved=False).select_related(
            "comment__video", "comment__author"
        )
        resolved = [services.resolve_report(r, request.user, reason).pk for r in reports]
    except ServiceError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status, headers=exc.headers)
    except DatabaseError:
        return JsonResponse(error_body("database_unavailable", "The database is unavailable right now."), status=503)
    return JsonResponse({"resolved": resolved})


urlpatterns = [
    path("videos/<id:video_id>/", moderation_console, name="moderation-console"),
    path("videos/<id:video_id>/reports/resolve/", resolve_reports, name="moderation-resolve-reports"),
]
