from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.api import TokenView
from comments.api import CommentDetailView, ReplayView
from comments.longpoll import comments_endpoint
from comments.moderation_api import (
    BanDetailView,
    BanListView,
    HeldQueueView,
    ModerateView,
    ModerationLogView,
    PinView,
    ReportListView,
    ReportResolveView,
    ReportView,
)
from livecomment.asyncapi import asyncapi_view
from livecomment.lib import converters  # noqa: F401  (registers <id:>)
from livecomment.lib.health import healthz, livez, readyz
from videos.api import VideoDetailView, VideoListView

api_v1 = [
    path("auth/token/", TokenView.as_view(), name="api-token"),
    path("videos/", VideoListView.as_view(), name="api-videos"),
    path("videos/<id:video_id>/", VideoDetailView.as_view(), name="api-video"),
    path("videos/<id:video_id>/comments/", comments_endpoint, name="api-comments"),
    path("videos/<id:video_id>/replay/", ReplayView.as_view(), name="api-replay"),
    path("comments/<id:comment_id>/", CommentDetailView.as_view(), name="api-comment"),
    path("comments/<id:comment_id>/moderate/", ModerateView.as_view(), name="api-comment-moderate"),
    path("comments/<id:comment_id>/report/", ReportView.as_view(), name="api-comment-report"),
    path("videos/<id:video_id>/bans/", BanListView.as_view(), name="api-bans"),
    path("videos/<id:video_id>/bans/<id:user_id>/", BanDetailView.as_view(), name="api-ban"),
    path("videos/<id:video_id>/moderation-log/", ModerationLogView.as_view(), name="api-moderation-log"),
    path("videos/<id:video_id>/pin/", PinView.as_view(), name="api-pin"),
    path("videos/<id:video_id>/held/", HeldQueueView.as_view(), name="api-held"),
    path("videos/<id:video_id>/reports/", ReportListView.as_view(), name="api-reports"),
    path("reports/<id:report_id>/resolve/", ReportResolveView.as_view(), name="api-report-resolve"),
]

urlpatterns = [
    path("", include("videos.urls")),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("moderation/", include("comments.console")),  # the live moderation console
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/asyncapi.json", asyncapi_view, name="api-asyncapi"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("livez", livez, name="livez"),
]

handler400 = "livecomment.lib.errors.handler400"
handler404 = "livecomment.lib.errors.handler404"
handler500 = "livecomment.lib.errors.handler500"
