from django.apps import AppConfig


class LivecommentConfig(AppConfig):
    name = "livecomment"
    verbose_name = "livecomment"
