from django.urls import path

from videos import views

urlpatterns = [
    path("", views.index, name="index"),
    path("videos/<int:video_id>/", views.video_page, name="video"),
]
