from django.urls import path

import livecomment.lib.converters  # noqa: F401  (registers <id:>)
from videos import views

urlpatterns = [
    path("", views.index, name="index"),
    path("videos/<id:video_id>/", views.video_page, name="video"),
    path("videos/<id:video_id>/chat/", views.chat_page, name="video-chat"),
]
