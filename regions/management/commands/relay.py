"""manage.py relay --to B=redis://... : send what this region accepts to other regions.

Runs until SIGTERM or SIGINT, which let the current step finish. Also applies
what other regions relayed here (the ingest loop) unless --no-ingest; then run
`manage.py ingest` in this region instead. See regions/relay.py.
"""

from __future__ import annotations

import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from regions.relay import Relay

log = logging.getLogger("livecomment.regions")


def parse_target(value: str) -> tuple[str, str]:
    name, sep, rest = value.partition("=")
    name = name.strip()
    url = rest.split(",", 1)[0].strip()
    if not sep or not name or not url:
        raise CommandError(f"--to {value!r}: expected <region>=<redis url>")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise CommandError(f"--to {value!r}: {url!r} is not a Redis URL")
    if "," in rest:
        log.warning("--to %s: a database URL is not needed (the target region applies its inbox itself); ignored", name)
    return name, url


class Command(BaseCommand):
    help = "Relay this region's comments and moderation to other regions (and apply what they relay here)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--to",
            action="append",
            default=[],
            metavar="REGION=REDIS_URL",
            help="A region to send to and its Redis URL; repeat for each region.",
        )
        parser.add_argument(
            "--no-ingest",
            action="store_true",
            help="Do not apply other regions' changes here (run `manage.py ingest` instead).",
        )
        parser.add_argument("--batch", type=int, default=500, help="Entries per step and target.")
        parser.add_argument(
            "--in-flight-seconds",
            type=float,
            default=10.0,
            help="How long a change may stay uncommitted before the relay gives up on it.",
        )
        parser.add_argument("--once", action="store_true", help="Do one step and exit.")

    def handle(self, *args, **options):
        targets = [parse_target(value) for value in options["to"]]
        names = [name for name, _ in targets]
        if len(set(names)) != len(names):
            raise CommandError("each region may be named once in --to")
        if not targets and options["no_ingest"]:
            raise CommandError("nothing to do: no --to and --no-ingest")
        if not settings.REGION_STREAM_MAXLEN and targets:
            raise CommandError("REGION_STREAM_MAXLEN=0: this region writes no region stream to relay")
        try:
            relay = Relay(
                targets,
                ingest=not options["no_ingest"],
                batch=options["batch"],
                in_flight_seconds=options["in_flight_seconds"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        run(relay, once=options["once"], what=f"relay from {settings.REGION} to {', '.join(names) or 'nowhere'}")


def run(relay: Relay, once: bool, what: str) -> None:
    signal.signal(signal.SIGTERM, relay.stop)
    signal.signal(signal.SIGINT, relay.stop)
    log.info("%s%s: started", what, " (+ ingest)" if relay.ingest and relay.targets else "")
    if once:
        relay.run_once()
    else:
        relay.run()
    log.info("%s: stopped (%s)", what, dict(relay.stats))
