"""manage.py ingest : apply what other regions' relays delivered to this region.

The loop `manage.py relay` also runs; use this one with `relay --no-ingest`,
or in a region that only receives. Stops cleanly on SIGTERM / SIGINT.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from regions.management.commands.relay import run
from regions.relay import Relay


class Command(BaseCommand):
    help = "Apply the changes other regions relayed here, through this region's write path."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=500)
        parser.add_argument("--once", action="store_true", help="Apply what is there and exit.")

    def handle(self, *args, **options):
        relay = Relay([], ingest=True, batch=options["batch"])
        run(relay, once=options["once"], what=f"ingest into {settings.REGION}")
