"""Prepare a livecomment database for a benchmark run; prints JSON.

    VAR_DIR=... [DATABASE_URL=...] python -m bench.lc_setup --users 8

Migrates, collects static files when they are missing (DEBUG=0 gateways
refuse to start without them), creates `--users` posting users
(bench-poster-<i>) with API tokens and a fresh live video, and prints
{"video": id, "tokens": [...]}. Runs with the same environment as the
gateways it prepares for.
"""

from __future__ import annotations

import argparse
import io
import json
import os


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--title", default="bench")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livecomment.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from livecomment.lib.checks import static_files_check
    from livecomment.server.embedded_redis import ensure_from_settings
    from videos.models import Video

    ensure_from_settings()  # some write paths may touch Redis; stopped at exit
    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())
    if static_files_check():  # DEBUG=0: `manage.py serve` refuses to start without them
        call_command("collectstatic", interactive=False, verbosity=0, stdout=io.StringIO())
    User = get_user_model()
    tokens = []
    for i in range(max(1, min(args.users, 1000))):
        user, created = User.objects.get_or_create(username=f"bench-poster-{i}")
        if created:
            user.set_unusable_password()
            user.save()
        token, _ = Token.objects.get_or_create(user=user)
        tokens.append(token.key)
    video = Video.objects.create(
        title=args.title, state=Video.State.LIVE, started_at=timezone.now(), description="benchmark video"
    )
    print(json.dumps({"video": video.pk, "tokens": tokens}))


if __name__ == "__main__":
    main()
