import django_eventstream
from django.urls import include, path

from bench.eventstream_target import views

urlpatterns = [
    path("events/", include(django_eventstream.urls), {"channels": ["bench"]}),
    path("publish", views.publish),
    path("healthz", views.healthz),
]
