"""Schemathesis against /api/schema/: every operation, generated requests
(valid and invalid), as a staff user (every endpoint is exercised past its
permission check) and anonymously.

Each response must not be a server error, must use a documented status code
(status_code_conformance: every built-in check runs but the two data checks
excluded in check()), documented headers and content type, and must match the
documented schema. Examples per
operation are bounded (EXAMPLES) so the file stays well under 90 s;
`SCHEMATHESIS_EXAMPLES=200 pytest tests/test_schemathesis.py` digs deeper.

The app is called in-process through WSGI (same thread, so inside the test's
database transaction); the long-poll wait is left out (it would sleep) and is
covered by tests/test_longpoll*; so is the SSE stream (an endless text/event-stream).
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from comments import services
from tests.base import alice, make_user, staff, video
from videos.models import Video

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
STAFF_TOKEN = "5" * 40
MAX_ID = 2**63 - 1  # the <id:> converter's range

WSGI_APP = get_wsgi_application()


@pytest.fixture
def keep_db_connection():
    """A raw WSGI app closes the database connection after each request (the
    request_started/finished signals); inside a test transaction that ends the
    test. Django's test Client detaches the same handler."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def load_schema():
    """The document /api/schema/ serves, generated in-process at collection
    (schemathesis' lazy fixture loader does not work with pytest 9)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    loaded = schemathesis.openapi.from_dict(raw)
    # Undeclared query parameters are ignored, as HTTP APIs commonly do (a
    # cache buster must not break a read); OpenAPI has no way to declare a
    # closed query string, so sending them is no negative case.
    loaded.config.generation.update(allow_extra_parameters=False)
    loaded.app = WSGI_APP
    return loaded


# The SSE stream is served in front of Django (ASGI, dispatcher/sse.py) and never ends: WSGI cannot
# call it and schemathesis cannot read it. Its events are checked against the AsyncAPI document
# (tests/test_asyncapi.py), its errors in tests/test_streams.py.
schema = load_schema().exclude(path="/api/v1/videos/{video_id}/stream")


@pytest.fixture
def world(video, alice, staff, keep_db_connection):
    """Real objects for generated ids to hit: a live video with a comment, a
    user to ban. Even ids generated for a path are swapped for real ones."""
    Token.objects.create(user=staff, key=STAFF_TOKEN)
    comment = services.post_comment(video, alice, "something to act on").comment
    target = make_user("target")
    return {"video_id": video.pk, "comment_id": comment.pk, "user_id": target.pk, "staff": staff, "video": video}


def aim_at_real_objects(case, world) -> None:
    for name, value in list((case.path_parameters or {}).items()):
        # Only ids the schema allows: swapping an invalid (negative) one for a
        # real one would turn a negative case into a valid request.
        if name in world and isinstance(value, int) and 0 <= value <= MAX_ID and value % 2 == 0:
            case.path_parameters[name] = world[name]


def restore(world) -> None:
    """Undo what one call may have changed that the next ones need: the staff
    token (DELETE /auth/token/ revokes it) and an open video."""
    Token.objects.get_or_create(user=world["staff"], defaults={"key": STAFF_TOKEN})
    if not Token.objects.filter(key=STAFF_TOKEN).exists():
        Token.objects.filter(user=world["staff"]).delete()
        Token.objects.create(user=world["staff"], key=STAFF_TOKEN)
    Video.objects.filter(pk=world["video_id"]).update(
        state=Video.State.LIVE, comments_enabled=True, slow_mode_seconds=0
    )


def reversed_range(case) -> bool:
    """A replay range with to_ms before from_ms: each bound is schema-valid, the
    pair a documented 400 invalid_range (OpenAPI cannot relate two parameters)."""
    query = case.query or {}
    try:
        return int(query["to_ms"]) < int(query["from_ms"])
    except (KeyError, TypeError, ValueError):
        return False


def check(case, world, headers: dict) -> None:
    if case.query and "wait" in case.query:
        case.query.pop("wait")  # long-poll: would sleep up to 30 s per example
    aim_at_real_objects(case, world)
    # Writes refuse some schema-valid bodies for reasons a schema cannot say
    # (a wrong password, a control character, a comment in the wrong state):
    # a documented 400/409. Reads must accept whatever the schema allows.
    excluded = [positive_data_acceptance] if case.method != "GET" or reversed_range(case) else []
    try:
        case.call_and_validate(headers=headers, excluded_checks=excluded)
    finally:
        restore(world)


LIMITS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@schema.parametrize()
@LIMITS
def test_the_api_matches_its_schema_for_staff(case, world):
    check(case, world, {"Authorization": f"Token {STAFF_TOKEN}"})


@schema.parametrize()
@LIMITS
def test_the_api_matches_its_schema_anonymously(case, world):
    check(case, world, {})
