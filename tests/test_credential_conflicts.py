"""Credentials that contradict each other are refused on the streams as on the
REST API: two Authorization headers, or a `?token=` and a header (or two
`?token=`) that name different keys, are 401 (4401 on a socket) -- never
the last one taken, never an anonymous stream."""

import itertools
import json

import httpx
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.base import alice, bob, video  # fixtures

UNKNOWN = "0" * 40
REFUSED_ON_SOCKET = {("error", "authentication_failed"), ("closed", 4401)}
numbers = itertools.count()


def sse_status(gateway, path: str, headers) -> tuple[int, str | None]:
    with httpx.stream("GET", gateway.url(path), headers=headers, timeout=10) as r:
        if r.status_code == 200:
            return 200, None
        r.read()
        return r.status_code, r.json()["error"]["code"]


def ws_post(gateway, path: str, headers) -> tuple[str, object]:
    """The answer to a post: (event, error code), or ("closed", close code)."""
    with connect(gateway.ws_url(path), additional_headers=headers, open_timeout=10) as ws:
        try:
            ws.send(json.dumps({"action": "post", "text": f"ws {next(numbers)}", "ref": "r"}))
            for _ in range(50):
                frame = json.loads(ws.recv(timeout=10))
                if frame.get("ref") == "r" or frame.get("event") == "error":
                    return frame["event"], frame.get("error", {}).get("code")
        except ConnectionClosed:
            return "closed", ws.close_code
    raise AssertionError("no answer")


def test_it_refuses_repeated_authorization_headers_on_streams_as_the_rest_api_does(gateways, video, alice, bob):
    """Django joins a repeated header into one ("a,b"), which no scheme reads:
    401. The streams took the last one instead, so `Basic ...` then an empty
    header read anonymously, and a bad credential then a good token signed in."""
    alice_key = Token.objects.create(user=alice).key
    bob_key = Token.objects.create(user=bob).key
    auth = "authorization"
    repeated = {
        "Basic, then empty": [(auth, "Basic YWxpY2U6eA=="), (auth, "")],
        "Basic, then a good token": [(auth, "Basic YWxpY2U6eA=="), (auth, f"Token {alice_key}")],
        "unknown, then a good Bearer": [(auth, f"Bearer {UNKNOWN}"), (auth, f"Bearer {alice_key}")],
        "two users": [(auth, f"Token {alice_key}"), (auth, f"Bearer {bob_key}")],
        "the same token twice": [(auth, f"Token {alice_key}"), (auth, f"Token {alice_key}")],
    }
    for server in ("daphne", "uvicorn"):
        gateway = gateways.start(server)
        for name, headers in repeated.items():
            r = httpx.get(gateway.url("/api/v1/videos/"), headers=headers, timeout=10)
            assert (r.status_code, r.json()["error"]["code"]) == (401, "authentication_failed"), (server, name)
            stream = f"/api/v1/videos/{video.pk}/stream"
            assert sse_status(gateway, stream, headers) == (401, "authentication_failed"), (server, name)
            assert ws_post(gateway, f"/ws/videos/{video.pk}/", headers) in REFUSED_ON_SOCKET, (server, name)
        # One header is still read.
        one = [(auth, f"Bearer {alice_key}")]
        assert sse_status(gateway, f"/api/v1/videos/{video.pk}/stream", one) == (200, None), server
        assert ws_post(gateway, f"/ws/videos/{video.pk}/", one) == ("ack", None), server


def test_it_refuses_a_query_token_and_a_header_that_disagree(gateways, video, alice, bob):
    """`?token=` beside `Authorization` (or a second `?token=`): the same key is
    one credential; different keys are 401, whichever is good -- not the
    query's taken and the header's ignored."""
    gateway = gateways.start()
    alice_key = Token.objects.create(user=alice).key
    bob_key = Token.objects.create(user=bob).key
    disagreeing = {
        "a good query, an unknown header": (f"?token={alice_key}", [("authorization", f"Bearer {UNKNOWN}")]),
        "a good query, another user's header": (f"?token={alice_key}", [("authorization", f"Token {bob_key}")]),
        "an unknown query, then a good one": (f"?token={UNKNOWN}&token={alice_key}", []),
        "two users in the query": (f"?token={bob_key}&token={alice_key}", []),
    }
    for name, (query, headers) in disagreeing.items():
        assert sse_status(gateway, f"/api/v1/videos/{video.pk}/stream{query}", headers) == (
            401,
            "authentication_failed",
        ), name
        assert ws_post(gateway, f"/ws/videos/{video.pk}/{query}", headers) in REFUSED_ON_SOCKET, name
    agreeing = {
        "the same key in both": (f"?token={alice_key}", [("authorization", f"Bearer {alice_key}")]),
        "the same key twice in the query": (f"?token={alice_key}&token={alice_key}", []),
        "an empty query token beside a header": ("?token=", [("authorization", f"Token {alice_key}")]),
    }
    for name, (query, headers) in agreeing.items():
        assert sse_status(gateway, f"/api/v1/videos/{video.pk}/stream{query}", headers) == (200, None), name
        assert ws_post(gateway, f"/ws/videos/{video.pk}/{query}", headers) == ("ack", None), name


def test_it_answers_the_docs_page_with_bad_credentials_and_a_format_it_does_not_serve(db):
    """/api/docs/?format=json refuses the format before it authenticates; its
    error page's template then read the user, the credentials failed there,
    in the middle of rendering: a 500 for any unreadable Authorization."""
    from django.test import Client

    client = Client(raise_request_exception=False)
    for query in ("?format=json", "?format=xml"):
        for header in ("Basic YWxpY2U6eA==", f"Bearer {UNKNOWN}", "Token \xff"):
            r = client.get(f"/api/docs/{query}", HTTP_AUTHORIZATION=header)
            assert 400 <= r.status_code < 500, (query, header, r.status_code)
            assert r.json()["error"]["code"] in {"not_found", "authentication_failed"}, (query, header)


def test_it_refuses_a_query_token_on_the_rest_api_rather_than_reading_anonymously(client, video, alice):
    """The streams take `?token=`; the REST API reads the header only. A token
    in its query (a long-poll written like the stream it stands in for) was
    ignored: the read answered 200 as anonymous, a moderator's without the
    held comments. It is 401, whether the token is good or not."""
    key = Token.objects.create(user=alice).key
    comments = f"/api/v1/videos/{video.pk}/comments/"
    for path in ["/api/v1/videos/", comments, f"{comments}?after=0-0&wait=1", f"/api/v1/videos/{video.pk}/"]:
        for token in (key, UNKNOWN):
            sep = "&" if "?" in path else "?"
            r = client.get(f"{path}{sep}token={token}")
            assert (r.status_code, r.json()["error"]["code"]) == (401, "authentication_failed"), (path, token)
            r = client.get(f"{path}{sep}token={token}", HTTP_AUTHORIZATION=f"Bearer {key}")
            assert (r.status_code, r.json()["error"]["code"]) == (401, "authentication_failed"), (path, token)
        sep = "&" if "?" in path else "?"
        assert client.get(f"{path}{sep}token=").status_code == 200, path  # no credentials: anonymous
    r = client.post(f"{comments}?token={key}", {"text": "hi"}, content_type="application/json")
    assert (r.status_code, r.json()["error"]["code"]) == (401, "authentication_failed")
