from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from dispatcher import viewer_count
from livecomment.lib import embed
from videos.models import Video

# Moderator badges: the comment payload names only the author (id, name), so
# the page carries the ids of the people who may moderate this video (staff
# site-wide plus the video's own moderators). Bounded: a site with more staff
# than this shows badges for the first ones only.
MAX_MODERATOR_IDS = 500


def index(request):
    videos = list(Video.objects.exclude(state=Video.State.ENDED).live_first()[:200])
    for video in videos:
        video.viewers = viewer_count(video.pk) if video.is_live else 0
    return render(request, "videos/index.html", {"videos": videos})


def moderator_ids(video: Video) -> list[int]:
    User = get_user_model()
    staff = User.objects.filter(is_staff=True, is_active=True).values_list("pk", flat=True)[:MAX_MODERATOR_IDS]
    own = video.moderators.values_list("pk", flat=True)[:MAX_MODERATOR_IDS]
    return sorted(set(staff) | set(own))


def chat_config(request, video: Video) -> dict:
    """What the chat panel's script (static/js/chat.js) reads from #lc-config:
    the same for the video page, the chat-only page and {% live_chat %}."""
    user = request.user
    config = {
        "videoId": video.pk,
        "state": video.state,
        "streamUrl": f"/api/v1/videos/{video.pk}/stream",
        "wsPath": f"/ws/videos/{video.pk}/",
        "commentsUrl": reverse("api-comments", args=[video.pk]),
        "commentUrl": "/api/v1/comments/{id}/",
        "reportUrl": "/api/v1/comments/{id}/report/",
        # Chat replay: an ended video with a recording replays its chat along
        # with the player where the page has one (static/js/chat-replay.js).
        "replay": video.state == Video.State.ENDED and bool(video.stream_url),
        "replayUrl": reverse("api-replay", args=[video.pk]),
        "heartbeatSeconds": settings.REALTIME_HEARTBEAT_SECONDS,
        "maxLength": settings.COMMENT_MAX_LENGTH,
        "maxNodes": 500,
        "slowModeSeconds": video.slow_mode_seconds,
        "commentsEnabled": video.comments_enabled,
        "user": {"id": user.pk, "name": user.get_username()} if user.is_authenticated else None,
        "moderatorIds": moderator_ids(video),
        "loginUrl": f"{settings.LOGIN_URL}?next={quote(request.get_full_path())}",
    }
    mod_ids = config["moderatorIds"]
    config["canModerate"] = bool(user.is_authenticated and user.pk in mod_ids)
    return config


def chat_context(request, video: Video) -> dict:
    return {
        "video": video,
        "config": chat_config(request, video),
        "viewers": viewer_count(video.pk) if video.is_live else 0,
    }


@ensure_csrf_cookie
def video_page(request, video_id: int):
    video = get_object_or_404(Video, pk=video_id)
    return render(request, "videos/video.html", chat_context(request, video))


@ensure_csrf_cookie
def chat_page(request, video_id: int):
    """The chat panel alone, full height: the pop-out window and the frame
    other sites embed (framing: livecomment.lib.embed)."""
    video = get_object_or_404(Video, pk=video_id)
    response = render(request, "videos/chat.html", chat_context(request, video))
    return embed.allow_framing(response)
