"""Create a live demo video and a few users; safe to run again."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from videos.models import Video

DEMO_USERS = [
    # username, password, staff
    ("moderator", "moderator-demo-pass", True),
    ("alice", "alice-demo-pass", False),
    ("bob", "bob-demo-pass", False),
]
DEMO_HOST = "alice"
DEMO_VIDEO_TITLE = "livecomment demo stream"


class Command(BaseCommand):
    help = "Create a live demo video and demo users (idempotent) and print their credentials."

    def handle(self, *args, **options):
        User = get_user_model()
        for username, password, staff in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"is_staff": staff})
            if created:
                user.set_password(password)
                user.is_staff = staff
                user.is_superuser = staff
                user.save()
        video, created = Video.objects.get_or_create(
            title=DEMO_VIDEO_TITLE,
            defaults={
                "description": "A demo live stream. Open this page in two windows and chat.",
                "state": Video.State.LIVE,
                "started_at": timezone.now(),
                "stream_url": "/static/demo/demo.mp4",
                "poster_url": "/static/demo/poster.svg",
            },
        )
        if video.owner_id is None:  # alice hosts the demo stream: her comments carry the Host badge
            video.owner = User.objects.get(username=DEMO_HOST)
            video.save(update_fields=["owner"])
        Video.objects.get_or_create(
            title="Coming up: launch keynote",
            defaults={"state": Video.State.SCHEDULED, "poster_url": "/static/demo/poster.svg"},
        )
        self.stdout.write(f"Demo video: /videos/{video.pk}/ ({'created' if created else 'exists'})")
        self.stdout.write("Demo users (username / password):")
        for username, password, staff in DEMO_USERS:
            role = " (staff moderator)" if staff else " (host of the demo video)" if username == DEMO_HOST else ""
            self.stdout.write(f"  {username} / {password}{role}")
