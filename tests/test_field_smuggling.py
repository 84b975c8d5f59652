"""No privilege from request data: every write endpoint refuses fields it does not know.

For each endpoint that takes a body, every field any endpoint accepts and
every parameter name of the service functions it reaches (read with
`inspect.signature`, so a new parameter is tried without touching this file)
is sent as one extra field, by a plain viewer and by the role the endpoint
is for. Each answer is 400 `unknown_fields` (or the viewer's 403 where the
role is checked first), and nothing in the database or the video's stream
changes. The same bodies without the extra field are accepted, so the 400
is the extra field's doing.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token

from comments import hotstore, services
from comments.models import Ban, Comment, ModerationAction, Report
from comments.services import pins, remote
from regions.models import RemoteUser
from tests.base import *
from tests.base import client_for, make_user
from videos.models import Video


@dataclass
class Endpoint:
    name: str  # the URL's name in the URLconf
    method: str
    path: str  # with {video}, {comment}, {report}
    body: dict  # a valid body: its keys are the fields the endpoint accepts
    services: list = field(default_factory=list)  # the service functions it reaches
    moderators_only: bool = False
    session: bool = False  # the console: a signed-in page, not a token
    instead: tuple = ()  # fields it accepts in place of some of the body's (the pin: a comment, or a text)


ENDPOINTS = [
    Endpoint("api-token", "post", "/api/v1/auth/token/", {"username": "alice", "password": "alice-password"}),
    Endpoint(
        "api-comments",
        "post",
        "/api/v1/videos/{video}/comments/",
        {"text": "hello"},
        [services.post_comment, services.post_comments, services.Draft],
    ),
    Endpoint(
        "api-video",
        "patch",
        "/api/v1/videos/{video}/",
        {"slow_mode_seconds": 5, "comments_enabled": True, "state": "ended"},
        [services.update_video, services.video_settings._apply_video_change],
        moderators_only=True,
    ),
    Endpoint(
        "api-comment-moderate",
        "post",
        "/api/v1/comments/{comment}/moderate/",
        {"action": "remove", "reason": "rude"},
        [services.moderate_comment, services.remove_comment, services.moderation._change_status],
        moderators_only=True,
    ),
    Endpoint(
        "api-comment-report",
        "post",
        "/api/v1/comments/{comment}/report/",
        {"reason": "spam"},
        [services.report_comment],
    ),
    Endpoint(
        "api-bans",
        "post",
        "/api/v1/videos/{video}/bans/",
        {"user": "bob", "duration_seconds": 60, "reason": "calm", "remove_comments": True},
        [services.ban_user, services.remove_comment, services.moderation._change_status],
        moderators_only=True,
    ),
    Endpoint(
        "api-pin",
        "put",
        "/api/v1/videos/{video}/pin/",
        {"comment": "{comment}"},
        [pins.pin_comment, pins._apply_pin],
        moderators_only=True,
        instead=("text", "duration_s"),
    ),
    Endpoint(
        "api-pin",
        "put",
        "/api/v1/videos/{video}/pin/",
        {"text": "Q&A at nine", "duration_s": 600},
        [pins.pin_announcement, pins._apply_pin],
        moderators_only=True,
        instead=("comment",),
    ),
    Endpoint(
        "api-report-resolve",
        "post",
        "/api/v1/reports/{report}/resolve/",
        {"reason": "fine"},
        [services.resolve_report],
        moderators_only=True,
    ),
    Endpoint(
        "moderation-resolve-reports",
        "post",
        "/moderation/videos/{video}/reports/resolve/",
        {"comment": "{comment}", "reason": "fine"},
        [services.resolve_report],
        moderators_only=True,
        session=True,
    ),
]
# Routes that write but take no body (DELETE), and the HTML forms (Django's
# forms read only the fields they declare).
NO_BODY = {"api-comment", "api-ban"}
FORMS = {"login", "logout", "signup"}

# Names worth trying on any endpoint besides the ones collected below.
CLASSIC = {"_origin", "origin", "is_staff", "is_superuser", "id", "pk", "status", "created", "author", "user_id"}


def parameter_names(function) -> set[str]:
    """Every named parameter of a service function (or dataclass)."""
    return {
        name
        for name, p in inspect.signature(function).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def smuggled(endpoint: Endpoint) -> list[str]:
    names = set(CLASSIC)
    for other in ENDPOINTS:
        names |= set(other.body)
    for function in endpoint.services:
        names |= parameter_names(function)
    return sorted(names - set(endpoint.body) - set(endpoint.instead))


@pytest.fixture
def world(db, redis):
    moderator = make_user("mod")
    viewer = make_user("alice")
    target = make_user("bob")
    video = Video.objects.create(title="Live", state=Video.State.LIVE)
    video.moderators.add(moderator)
    comment = services.post_comment(video, target, "reported").comment
    report = services.report_comment(comment, moderator, "look")
    for user in (viewer, moderator):
        client_for(user)  # their tokens exist before anything is sent
    return {"video": video, "comment": comment, "report": report, "viewer": viewer, "moderator": moderator}


def snapshot(video: Video, redis) -> tuple:
    """What a write could change: the rows the write path keeps and the video's and region's streams."""
    return (
        list(Video.objects.values().order_by("pk")),
        list(Comment.objects.values("pk", "status", "text", "author_id").order_by("pk")),
        list(Ban.objects.values().order_by("pk")),
        list(Report.objects.values().order_by("pk")),
        ModerationAction.objects.count(),
        list(Token.objects.values_list("user_id", flat=True).order_by("user_id")),
        list(get_user_model().objects.values("pk", "username", "is_staff").order_by("pk")),
        RemoteUser.objects.count(),
        redis.xlen(hotstore.stream_key(video.pk)),
        redis.xlen(hotstore.REGION_STREAM),
    )


def send(endpoint: Endpoint, world: dict, user, body: dict):
    ids = {"video": world["video"].pk, "comment": world["comment"].pk, "report": world["report"].pk}
    path = endpoint.path.format(**ids)
    body = {k: (ids["comment"] if v == "{comment}" else v) for k, v in body.items()}
    if endpoint.session:
        from rest_framework.test import APIClient

        client = APIClient()
        client.force_login(user)
    elif endpoint.name == "api-token":
        from rest_framework.test import APIClient

        client = APIClient()
    else:
        client = client_for(user)
    return getattr(client, endpoint.method)(path, body, format="json")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
@pytest.mark.parametrize("role", ["viewer", "moderator"])
def test_it_refuses_every_smuggled_field_and_changes_nothing(world, redis, endpoint, role):
    user = world[role]
    before = snapshot(world["video"], redis)
    for name in smuggled(endpoint):
        r = send(endpoint, world, user, {**endpoint.body, name: "x"})
        error = r.json().get("error", {})
        refused_first = role == "viewer" and endpoint.moderators_only and r.status_code == 403
        assert refused_first or (r.status_code, error.get("code")) == (400, "unknown_fields"), (name, r.content)
        if not refused_first:
            assert name in error["message"] and error["fields"] == [name]
    assert snapshot(world["video"], redis) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_it_accepts_the_same_bodies_without_the_extra_field(world, endpoint):
    user = world["moderator"] if endpoint.moderators_only else world["viewer"]
    r = send(endpoint, world, user, endpoint.body)
    assert 200 <= r.status_code < 300, r.content


def test_it_keeps_a_fresh_account_from_changing_a_video(world):
    """The attack as reported: internal flags in the body of a video PATCH."""
    video = world["video"]
    stranger = client_for(make_user("fresh"))
    for body in (
        {"_origin": "x", "state": "ended", "comments_enabled": False},
        {"by": 1, "state": "ended"},
        {"video": 1, "state": "ended"},
    ):
        r = stranger.patch(f"/api/v1/videos/{video.pk}/", body, format="json")
        assert (r.status_code, r.json()["error"]["code"]) == (400, "unknown_fields"), body
    r = stranger.patch(f"/api/v1/videos/{video.pk}/", {"state": "ended"}, format="json")
    assert (r.status_code, r.json()["error"]["code"]) == (403, "permission_denied")
    assert Video.objects.get(pk=video.pk).state == Video.State.LIVE


def test_no_public_service_function_takes_an_internal_flag():
    """Internal flags (region ingest, "made elsewhere") live in private functions
    and in the ingest-only entry points (comments.services.remote), never re-exported."""
    modules = [services, *(m for m in vars(services).values() if inspect.ismodule(m) and m is not remote)]
    assert {m.__name__.rpartition(".")[2] for m in modules[1:]} >= {"rules", "posting", "store", "moderation"}
    for module in modules:
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or not function.__module__.startswith(services.__name__ + "."):
                continue
            assert function.__module__ != remote.__name__, name
            flags = {p for p in parameter_names(function) if p.startswith("_") or p in ("origin", "skip_checks")}
            assert not flags, (name, flags)


def test_every_route_that_takes_a_body_is_in_the_table():
    """A new write route must be added above (or to NO_BODY / FORMS with a reason)."""
    found: dict[str, object] = {}

    def walk(patterns):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns)
            elif isinstance(p, URLPattern) and p.name:
                found[p.name] = p.callback

    walk(get_resolver().url_patterns)
    writes = set()
    for name, callback in found.items():
        view = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        methods = {m for m in ("post", "put", "patch") if view is not None and hasattr(view, m)}
        if methods or name in {e.name for e in ENDPOINTS}:
            writes.add(name)
    table = {e.name for e in ENDPOINTS}
    missing = {n for n in writes - table - NO_BODY - FORMS if not n.startswith(("admin", "api-schema", "api-docs"))}
    assert not missing, f"write routes without a row in ENDPOINTS: {sorted(missing)}"
    assert table <= set(found), "a row names a route that does not exist"


@pytest.mark.processes
def test_it_refuses_smuggled_fields_in_websocket_posts(gateways, transactional_db):
    from dispatcher.ws import POST_FIELDS
    from tests.realtime_clients import WSClient

    gateway = gateways.start()
    video = Video.objects.create(title="Live", state=Video.State.LIVE)
    alice = make_user("alice")
    token = Token.objects.create(user=alice).key
    ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/?token={token}"))
    names = set(CLASSIC)
    for endpoint in ENDPOINTS:
        names |= set(endpoint.body)
    for function in (services.post_comment, services.post_comments, services.Draft):
        names |= parameter_names(function)
    names = sorted(names - set(POST_FIELDS))
    for n, name in enumerate(names):
        ws.send({"action": "post", "text": f"smuggled {n}", "ref": n, name: "x"})
    assert ws.wait_until(lambda c: len(c.of_type("error")) == len(names), 10)
    assert {e["error"]["code"] for e in ws.of_type("error")} == {"unknown_fields"}
    assert sorted(e["ref"] for e in ws.of_type("error")) == list(range(len(names)))
    ws.send({"action": "post", "text": "plain", "ref": "ok", "idempotency_key": "k"})
    assert ws.wait_until(lambda c: c.of_type("ack"), 10)
    ws.close()
    assert list(Comment.objects.values_list("text", flat=True)) == ["plain"]
