"""Start-up checks of a gateway: what would otherwise fail on every request.

Run by `manage.py serve` before it starts workers and by livecomment/asgi.py
when a worker loads the app -- not registered with Django's check framework,
whose checks also run in `migrate` and `check --deploy`, which a release runs
before `collectstatic`.

And warnings of the check framework (registered in livecomment/apps.py; shown
by `manage.py check`, `migrate` and `serve`): a setting that works but not as
the operator likely meant.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages


def static_files_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """With DEBUG=0 the static files storage names files from collectstatic's
    manifest; without one every page that links a static file answers 500."""
    storage = storages["staticfiles"]
    if not isinstance(storage, ManifestFilesMixin) or storage.manifest_storage.exists(storage.manifest_name):
        return []
    return [
        checks.Error(
            f"Static files are not collected: {settings.STATIC_ROOT} has no {storage.manifest_name}, "
            "so every page would answer 500.",
            hint="Run `python manage.py collectstatic --noinput` with the same STATIC_ROOT before starting the server.",
            id="livecomment.E001",
        )
    ]


def embed_cookies_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Other sites may frame the chat, but with SameSite=Lax (or Strict) cookies
    the browser sends the frame no session and no CSRF cookie: nobody can sign
    in or post there."""
    if not settings.EMBED_ALLOWED_ORIGINS:
        return []
    names = ("SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SAMESITE")
    strict = [f"{name}={getattr(settings, name)}" for name in names if getattr(settings, name) != "None"]
    if not strict:
        return []
    return [
        checks.Warning(
            f"EMBED_ALLOWED_ORIGINS lets other sites frame the chat, but {' and '.join(strict)}: "
            "browsers send those cookies to no frame of another site, so the framed chat cannot sign in or post.",
            hint="Set SESSION_COOKIE_SAMESITE=None and CSRF_COOKIE_SAMESITE=None (they need SESSION_COOKIE_SECURE=1, "
            "CSRF_COOKIE_SECURE=1 and HTTPS); see docs/OPERATIONS.md, 'Embedding the chat'. Or keep them: the "
            "framed chat is then read-only, and its sign-in link opens the chat in a tab of its own.",
            id="livecomment.W001",
        )
    ]


def require_start_up_checks() -> None:
    """Refuse to start (ImproperlyConfigured) when a start-up check fails."""
    errors = static_files_check()
    if errors:
        raise ImproperlyConfigured("\n".join(f"{e.msg} {e.hint}" for e in errors))
