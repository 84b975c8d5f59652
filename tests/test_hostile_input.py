"""Hostile input on every route: absurd ids, JSON nested 10,000 deep, 64 KiB
headers, invalid UTF-8 in path, query, headers and body. The answer is a
4xx -- under /api/ with {"error": {"code", "message"}} -- and never a 5xx.

The routes are not a hand list: they are read from the URLconf here (Django's
handler, in process) and from the ASGI routing table in
tests/test_hostile_gateways.py (real uvicorn and Daphne processes: the SSE
stream, the WebSocket handshake, the server's own header limits). A new route
is covered the day it is added.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comments import services
from comments.models import Comment
from livecomment.lib.converters import MAX_ID
from tests.base import alice, make_user, staff, video  # fixtures

METHODS = ["get", "post", "put", "patch", "delete"]
WRITES = ["post", "put", "patch", "delete"]
PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")

# Ids no route may take: too long for int(), past the 64-bit range, not digits.
ABSURD_IDS = [
    "9" * 5000,
    str(MAX_ID + 1),
    str(2**64),
    "-1",
    "+1",
    "1.5",
    "1e3",
    "0x10",
    "\uff11",  # FULLWIDTH DIGIT ONE: str.isdigit() says yes
    "\u0663",  # ARABIC-INDIC DIGIT THREE: so does \d
    "%FF",
    "%00",
    "1%00",
]
NESTED = [b"[" * 10_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000, b'{"text": ' + b"[" * 900 + b"]" * 900 + b"}"]
HUGE = 64 * 1024
INVALID_UTF8_BODIES = [b"\xff\xfe", b'{"text": "\xff"}', b'{"comment": 1, "reason": "\xc3\x28"}', b'{"\xff": 1}']


def routes() -> list[str]:
    """Every route of the URLconf, as its pattern text (prefixes joined)."""

    def walk(patterns, prefix: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return list(walk(get_resolver().url_patterns, ""))


ROUTES = routes()
ID_ROUTES = [r for r in ROUTES if "<id:" in r]


def concrete(route: str, ids: dict[str, str] | None = None, default: str = "1") -> str:
    """A path of the route: each parameter filled (ids from `ids` by name)."""
    ids = ids or {}

    def fill(match: re.Match) -> str:
        return ids.get(match["name"], default)

    path = PARAM.sub(fill, route)
    # Regex routes (the admin's): a group's first alternative, or the default.
    path = REGEX_GROUP.sub(lambda m: m["body"].split("|")[0] if re.fullmatch(r"[\w|]+", m["body"]) else default, path)
    return "/" + path.replace("^", "").replace("$", "")


def is_api(path: str) -> bool:
    return path.startswith("/api/")


def assert_refused(response, path: str, statuses=range(400, 500)) -> None:
    """A 4xx (or the given statuses); under /api/ an error in the JSON shape."""
    where = f"{response.request['REQUEST_METHOD']} {path[:120]}"
    assert response.status_code in statuses, (where, response.status_code, response.content[:300])
    if is_api(path) and response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), (where, response["Content-Type"])
        error = response.json()["error"]
        assert error["code"] and error["message"], where


def assert_no_5xx(response, path: str) -> None:
    assert_refused(response, path, statuses=range(200, 500))


@pytest.fixture
def world(db, alice, staff, video):
    """A comment, a report and a ban target, so ids name real rows and views go
    as deep as they can (parsing, validation) before they answer."""
    comment = services.post_comment(video, alice, "hello").comment
    report = services.report_comment(comment, make_user("reporter"), "spam")
    return {"video_id": str(video.pk), "comment_id": str(comment.pk), "report_id": str(report.pk), "user_id": "1"}


@pytest.fixture
def clients(staff):
    """Anonymous, and staff by session (reaches every view; CSRF as the test
    client does, not enforced, so the body is what is tested)."""
    anonymous, signed_in = Client(), Client()
    signed_in.force_login(staff)
    for client in (anonymous, signed_in):
        client.raise_request_exception = False  # what a real client would get
    return [anonymous, signed_in]


def request(client, method: str, path: str, body: bytes | None = None, **headers):
    if body is None:
        return getattr(client, method)(path, **headers)
    return getattr(client, method)(path, data=body, content_type="application/json", **headers)


def test_it_enumerates_the_routes():
    # The enumeration itself: if it found nothing, every test below would pass vacuously.
    assert "api/v1/videos/<id:video_id>/comments/" in ROUTES
    assert "moderation/videos/<id:video_id>/reports/resolve/" in ROUTES
    assert len(ID_ROUTES) >= 12
    assert not [r for r in ROUTES if "<int:" in r], "ids go through <id:> (livecomment/lib/converters.py)"


@pytest.mark.parametrize("route", ID_ROUTES)
def test_it_answers_404_to_absurd_ids(route, clients, world):
    for value in ABSURD_IDS:
        for name in PARAM.findall(route):
            ids = {**world, name[1]: value}
            path = concrete(route, ids)
            for client in clients:
                for method in METHODS:
                    response = request(client, method, path, b"{}" if method != "get" else None)
                    assert_refused(response, path, statuses=[404])


@pytest.mark.parametrize("route", ID_ROUTES)
def test_it_takes_the_largest_id_without_a_5xx(route, clients, world):
    # In range: the route matches and the id reaches the database.
    path = concrete(route, {}, default=str(MAX_ID))
    for client in clients:
        for method in METHODS:
            assert_no_5xx(request(client, method, path, b"{}" if method != "get" else None), path)


@given(value=st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_it_never_fails_on_any_id_segment(value, clients, world):
    from urllib.parse import quote

    for route in ID_ROUTES:
        path = concrete(route, {}, default=quote(value, safe=""))
        assert_no_5xx(clients[1].get(path), path)


@pytest.mark.parametrize("route", ROUTES)
def test_it_refuses_json_nested_too_deeply(route, clients, world):
    path = concrete(route, world)
    for body in NESTED:
        for client in clients:
            for method in WRITES:
                response = request(client, method, path, body)
                assert_no_5xx(response, path)
                # A body is read by POST, PUT and PATCH (DELETE ignores it).
                reads_json = is_api(path) or route.startswith("moderation/videos/<id:video_id>/reports")
                if reads_json and method != "delete":
                    assert response.status_code >= 400, (method, path, response.status_code)
    assert not Comment.objects.exclude(text="hello").exists()  # nothing half-written


@pytest.mark.parametrize("route", ROUTES)
def test_it_survives_huge_headers(route, clients, world):
    path = concrete(route, world)
    headers = {
        "HTTP_COOKIE": "sessionid=" + "a" * HUGE,
        "HTTP_X_FORWARDED_FOR": "1.2.3.4, " * (HUGE // 9),
        "HTTP_IDEMPOTENCY_KEY": "k" * HUGE,
        "HTTP_ACCEPT": "application/json;q=0.9, " * (HUGE // 24),
        "HTTP_X_REQUEST_ID": "r" * HUGE,
        "HTTP_LAST_EVENT_ID": "1-" + "0" * HUGE,
        "HTTP_ORIGIN": "http://" + "o" * HUGE,
        "HTTP_REFERER": "http://" + "r" * HUGE,
    }
    for client in clients:
        for method in ["get", "post"]:
            body = b'{"text": "hi"}' if method == "post" else None
            assert_no_5xx(request(client, method, path, body, **headers), path)
            assert_no_5xx(request(client, method, path, body, HTTP_AUTHORIZATION="Token " + "a" * HUGE), path)


@pytest.mark.parametrize("route", ROUTES)
def test_it_survives_invalid_utf8(route, clients, world):
    path = concrete(route, world)
    # Headers arrive as latin-1 text (WSGI/ASGI): "\xff" is the byte 0xFF.
    headers = {
        "HTTP_AUTHORIZATION": "Token \xff\xfe",
        "HTTP_IDEMPOTENCY_KEY": "\xff",
        "HTTP_X_REQUEST_ID": "\xff",
        "HTTP_LAST_EVENT_ID": "\xff",
        "HTTP_X_FORWARDED_FOR": "\xff",
    }
    query = "?after=%FF&before=%FF&wait=%FF&limit=%FF&token=%FF&next=%FF&format=%FF"
    for client in clients:
        assert_no_5xx(client.get(path + query), path)
        assert_no_5xx(client.get(path, **headers), path)
        assert_no_5xx(client.get(path.rstrip("/") + "%FF%FE/"), path)
        for body in INVALID_UTF8_BODIES:
            for method in WRITES:
                response = request(client, method, path, body)
                assert_no_5xx(response, path)


@pytest.mark.parametrize("route", ROUTES)
def test_it_refuses_absurd_query_values(route, clients, world):
    path = concrete(route, world)
    huge = "9" * 5000
    for value in [huge, f"{huge}-0", "-1", "1e3", "\x00", "%00"]:
        query = "&".join(
            f"{name}={value}" for name in ["after", "before", "limit", "wait", "last_event_id", "token", "next", "page"]
        )
        for client in clients:
            assert_no_5xx(client.get(f"{path}?{query}"), path)


@pytest.mark.parametrize("debug", [True, False])
def test_it_takes_api_paths_with_or_without_the_trailing_slash(alice, video, settings, debug):
    from tests.base import client_for

    settings.DEBUG = debug
    client = client_for(alice)
    response = client.post(f"/api/v1/videos/{video.pk}/comments", {"text": "no slash"}, format="json")
    assert response.status_code == 201, response.content
    assert client.get(f"/api/v1/videos/{video.pk}").json()["id"] == video.pk


@pytest.mark.parametrize("debug", [True, False])
def test_it_answers_unmatched_api_paths_with_json(settings, debug):
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    for path in ["/api/", "/api/v1/nothing", "/api/v1/nothing/", "/api/v2/videos/", "/api/v1/videos/1/nothing"]:
        for method in METHODS:
            assert_refused(request(client, method, path), path, statuses=[404])


@pytest.mark.parametrize("debug", [True, False])
def test_it_answers_a_500_under_api_with_json(settings, monkeypatch, debug):
    # A bug in a view (not hostile input; a 500 is right): still the error shape, DEBUG or not.
    from videos.api import VideoListView

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    settings.DEBUG = debug
    monkeypatch.setattr(VideoListView, "get", broken)
    response = Client(raise_request_exception=False).get("/api/v1/videos/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "server_error"
