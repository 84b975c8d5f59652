"""Stream authentication refuses malformed tokens cleanly (never a database error)."""

import itertools
import json
import re

import httpx
from rest_framework.authtoken.models import Token
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.base import alice, video  # fixtures


def test_it_refuses_tokens_that_cannot_be_tokens(gateways, video):
    gateway = gateways.start()
    for token in ["%00abc", "x" * 41, "caf%C3%A9", "abc%20def"]:
        r = httpx.get(gateway.url(f"/api/v1/videos/{video.pk}/stream?token={token}"), timeout=5)
        assert r.status_code == 401, (token, r.text)
        assert r.json()["error"]["code"] == "authentication_failed"


BAD_HEADERS = {
    "a Bearer unknown key": "Bearer " + "0" * 40,
    "Basic": "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=",
    "an unknown scheme": "Foo x",
}


def test_it_takes_token_or_bearer_on_every_transport_and_refuses_other_credentials(gateways, video, alice):
    """The comment fast path, SSE and WebSocket read the Authorization header
    as the REST API does: Token or Bearer with the same key; any other
    credentials are 401 (4401 on a socket), never an anonymous request."""
    gateway = gateways.start()
    key = Token.objects.create(user=alice).key
    comments = gateway.url(f"/api/v1/videos/{video.pk}/comments/")
    stream = gateway.url(f"/api/v1/videos/{video.pk}/stream")
    socket = gateway.ws_url(f"/ws/videos/{video.pk}/")
    numbers = itertools.count()

    def post(headers):
        return httpx.post(comments, json={"text": f"hi {next(numbers)}"}, headers=headers, timeout=10)

    def sse_status(headers):
        with httpx.stream("GET", stream, headers=headers, timeout=10) as r:
            return r.status_code, (r.read() and r.json()["error"]["code"]) if r.status_code != 200 else None

    def ws_post(headers):
        """The answer to a post: (event, error code), or ("closed", close code)."""
        with connect(socket, additional_headers=headers, open_timeout=10) as ws:
            try:
                ws.send(json.dumps({"action": "post", "text": f"ws {next(numbers)}", "ref": "r"}))
                for _ in range(50):
                    frame = json.loads(ws.recv(timeout=10))
                    if frame.get("ref") == "r" or frame.get("event") == "error":
                        return frame["event"], frame.get("error", {}).get("code")
            except ConnectionClosed:
                return "closed", ws.close_code
        raise AssertionError("no answer")

    def fast_batches():
        found = re.search(r"^livecomment_post_batch_size_count (\S+)$", httpx.get(gateway.url("/metrics")).text, re.M)
        return int(float(found.group(1))) if found else 0

    for scheme in ("Token", "Bearer"):
        headers = {"Authorization": f"{scheme} {key}"}
        before = fast_batches()
        r = post(headers)
        assert (r.status_code, r.json()["author"]["name"]) == (201, "alice"), (scheme, r.text)
        assert fast_batches() == before + 1, scheme  # the fast path took it
        assert sse_status(headers) == (200, None), scheme
        assert ws_post(headers) == ("ack", None), scheme

    for name, header in BAD_HEADERS.items():
        headers = {"Authorization": header}
        r = post(headers)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "authentication_failed"), name
        assert sse_status(headers) == (401, "authentication_failed"), name
        event, code = ws_post(headers)
        assert (event, code) in {("error", "authentication_failed"), ("closed", 4401)}, name

    # No header: anonymous everywhere (reads work, posting is refused).
    r = post({})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "not_authenticated")
    assert sse_status({}) == (200, None)
    assert ws_post({}) == ("error", "not_authenticated")
