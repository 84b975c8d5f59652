from django.apps import AppConfig
from django.core import checks


class LivecommentConfig(AppConfig):
    name = "livecomment"
    verbose_name = "livecomment"

    def ready(self) -> None:
        from livecomment.lib.checks import embed_cookies_check

        checks.register(embed_cookies_check, checks.Tags.security)
