"""The AsyncAPI document of the real-time API (/api/asyncapi.json, livecomment/asyncapi.py).

It is generated from comments.events.EVENT_TYPES and dispatcher.protocol;
the official parser (@asyncapi/parser, tests/node) must accept it with no
error; every event type, emitted once through a real gateway, must match it;
and every event and frame the test run's SSE and WebSocket clients received
(tests/realtime_clients.py records them) is checked against it by the last
test of the run (tests/conftest.py orders it last).
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from comments import events, services
from comments.models import BlockedTerm, Comment
from comments.services import pins
from livecomment.asyncapi import build
from livecomment.lib.errors import ERROR_CODES
from tests import realtime_clients
from tests.asyncapi_check import problems
from tests.base import alice, bob, staff, video
from tests.realtime_clients import SSEClient, WSClient
from tests.servers import ROOT
from videos.models import Video

NODE_DIR = ROOT / "tests" / "node"


def parser_ready() -> bool:
    """Node and the pinned @asyncapi/parser (tests/node, installed on first use like tests/test_native_clients.py)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return False
    if not (NODE_DIR / "node_modules" / "@asyncapi" / "parser").is_dir():
        installed = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, capture_output=True, timeout=300
        )
        if installed.returncode != 0:
            return False
    return True


def parse(document: dict, tmp_path) -> tuple[int, dict]:
    if not parser_ready():
        pytest.skip("node, npm or @asyncapi/parser is not available")
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document))
    run = subprocess.run(
        ["node", "validate_asyncapi.js", str(path)], cwd=NODE_DIR, capture_output=True, text=True, timeout=120
    )
    assert run.returncode in (0, 1), run.stderr
    return run.returncode, json.loads(run.stdout)


def test_it_serves_the_document_to_anyone_with_an_etag(db):
    client = Client()
    response = client.get("/api/asyncapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "public" in response["Cache-Control"]
    document = json.loads(response.content)
    assert document["asyncapi"] == "3.0.0"
    assert document["servers"]["ws"]["host"] == "testserver"
    assert document["channels"]["stream"]["address"] == "/api/v1/videos/{video_id}/stream"
    assert document["channels"]["socket"]["address"] == "/ws/videos/{video_id}/"
    again = client.get("/api/asyncapi.json", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again["ETag"] == response["ETag"]
    assert client.head("/api/asyncapi.json").status_code == 200
    refused = client.post("/api/asyncapi.json")
    assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"


def test_it_passes_the_official_asyncapi_parser(db, tmp_path):
    code, report = parse(Client().get("/api/asyncapi.json").json(), tmp_path)
    assert code == 0 and report["errors"] == [], report["errors"]
    assert report["channels"] == ["stream", "socket"]
    # every event on both transports, plus ping, the post and its two answers, are messages
    assert report["messages"] == 2 * len(events.EVENT_TYPES) + 4


def test_it_fails_the_parser_on_a_broken_document(tmp_path):
    broken = build()
    broken["operations"]["ws_send_post"]["action"] = "publish"  # AsyncAPI 2's word: not valid in 3
    del broken["components"]["schemas"]["Author"]  # a dangling $ref
    code, report = parse(broken, tmp_path)
    assert code == 1 and report["errors"]


def test_it_documents_every_event_type_and_every_video_state():
    document = build()
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert set(events.EVENT_TYPES) <= names
    assert {"ping", "post", "ack", "error"} <= names
    state = document["components"]["schemas"]["VideoStateData"]["properties"]["state"]
    assert state["enum"] == list(Video.State.values)
    status = document["components"]["schemas"]["CommentJson"]["properties"]["status"]
    assert status["enum"] == list(Comment.Status.values)
    assert set(document["channels"]["socket"]["x-close-codes"]) >= {"4401", "4404", "4503"}
    code = document["components"]["schemas"]["ErrorDetail"]["properties"]["code"]
    assert code["enum"] == sorted(ERROR_CODES)  # the OpenAPI document's ErrorCode enum too


def test_it_refuses_an_event_type_it_does_not_list():
    with pytest.raises(ValueError, match="comment.edited"):
        events.event("comment.edited", ("0-0", "1-0"), {"id": 1})
    with pytest.raises(ValueError, match="viewers"):  # not a stream event: the gateways count viewers
        events.event("viewers", ("0-0", "1-0"), {"count": 1})


def test_it_flags_a_payload_that_differs_from_the_document():
    good = {
        "event": "comment",
        "id": "1764000000000-0",
        "data": {
            "id": 1,
            "cursor": "1764000000000-0",
            "video": 3,
            "author": {"id": 5, "name": "ann", "roles": ["host"]},
            "text": "hi",
            "created": "2026-11-24T22:00:00.000Z",
            "global_id": "eu:1",
            "offset_ms": 1500,
        },
    }
    assert problems("sse", good) == [] and problems("ws", good) == []
    assert problems("sse", {**good, "data": {**good["data"], "id": "1"}})  # a wrong type
    assert problems("sse", {**good, "data": {**good["data"], "likes": 0}})  # a field the document does not declare
    assert problems("ws", {**good, "id": "later"})  # not a position
    assert problems("sse", {"event": "comment.edited", "data": {}})  # an event the document does not list
    assert problems("sse", {"event": "viewers", "id": "1-0", "data": {"count": 1}})  # viewers have no id
    assert problems("ws", {"event": "ack", "ref": None, "data": good["data"]})  # an ack's comment has a status


def test_it_emits_every_event_type_as_the_document_says(gateways, video, alice, bob, staff):
    gateway = gateways.start(REALTIME_VIEWERS_INTERVAL="0.2")
    token = Token.objects.create(user=staff).key
    alice_token = Token.objects.create(user=alice).key
    sse = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream?token={token}")).wait_open()
    ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/?token={token}"))
    poster = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/?token={alice_token}"))
    BlockedTerm.objects.create(term="spoiler", action="hold", video=video)
    services.rules._terms_cache.clear()
    # A socket post is judged by the video as it is then: before slow mode and the end.
    poster.send({"action": "post", "text": "from the socket", "ref": "r1"})
    assert poster.wait_until(lambda c: len(c.of_type("ack")) == 1, 10)

    comment = services.post_comment(video, alice, "hello").comment
    held = services.post_comment(video, alice, "a spoiler!").comment
    services.report_comment(comment, bob, "rude")
    services.moderate_comment(held, staff, "approve")
    pins.pin_comment(video, staff, comment)
    services.moderate_comment(comment, staff, "remove")  # and so unpinned: pin.cleared
    services.update_video(video, staff, slow_mode_seconds=5)
    services.update_video(video, staff, state="ended")
    poster.send({"action": "dance", "ref": "r2"})
    poster.send({"action": "post", "text": "x", "colour": "red", "ref": "r3"})  # unknown_fields, with `fields`

    for client in (sse, ws):
        assert client.wait_until(lambda c: set(events.EVENT_TYPES) <= {e.get("event") for e in c.events}, 10), set(
            events.EVENT_TYPES
        ) - {e.get("event") for e in client.events}
    assert poster.wait_until(lambda c: len(c.of_type("ack")) == 1 and len(c.of_type("error")) == 2, 10)
    assert [e["error"]["code"] for e in poster.of_type("error")] == ["unknown_action", "unknown_fields"]
    for client in (sse, ws, poster):
        client.close()
    received = [("sse", e) for e in sse.events] + [("ws", e) for e in ws.events + poster.events]
    found = [
        p for transport, e in received for p in problems(transport, {k: v for k, v in e.items() if k != "received_at"})
    ]
    assert found == []


def test_it_received_only_events_the_document_describes():
    """Ordered last in the run: every event and frame the run's clients received matches the document."""
    if not realtime_clients.RECORDED:
        pytest.skip("no SSE or WebSocket traffic in this run")
    found = sorted({p for transport, frame in realtime_clients.RECORDED for p in problems(transport, frame)})
    assert found == [], "\n".join(found[:50])


def test_it_puts_the_sse_stream_in_the_openapi_document_as_an_event_stream(db):
    openapi = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    stream = openapi["paths"]["/api/v1/videos/{video_id}/stream"]["get"]
    assert list(stream["responses"]["200"]["content"]) == ["text/event-stream"]
    assert stream["externalDocs"]["url"] == "/api/asyncapi.json"
    assert {p["name"] for p in stream["parameters"]} == {"video_id", "Last-Event-ID", "last_event_id", "token"}
    for status in ("400", "401", "404", "503"):
        assert stream["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


def test_it_answers_any_write_with_405_even_without_a_csrf_token(db):
    """As a real gateway runs it, with Django's CSRF check: a POST to the
    document is the wrong method (405), not a failed CSRF check (403)."""
    client = Client(enforce_csrf_checks=True)
    for method in ("post", "put", "patch", "delete"):
        refused = getattr(client, method)("/api/asyncapi.json")
        assert refused.status_code == 405, (method, refused.content)
        assert refused.json()["error"]["code"] == "method_not_allowed"


def test_it_matches_if_none_match_as_rfc_9110_says(db):
    """If-None-Match compares weakly (a proxy that compresses the body turns
    the ETag into W/"..." and its clients send that back) and `*` matches."""
    client = Client()
    etag = client.get("/api/asyncapi.json")["ETag"]
    for header in (etag, f"W/{etag}", f'"other", W/{etag}', "*"):
        again = client.get("/api/asyncapi.json", HTTP_IF_NONE_MATCH=header)
        assert again.status_code == 304, header
        assert again["ETag"] == etag
    for header in ('"other"', f'W/{etag[:-2]}x"', "", "garbage"):
        assert client.get("/api/asyncapi.json", HTTP_IF_NONE_MATCH=header).status_code == 200, header
