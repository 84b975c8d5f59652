"""Stream authentication refuses malformed tokens cleanly (never a database error)."""

import httpx

from tests.base import video


def test_it_refuses_tokens_that_cannot_be_tokens(gateways, video):
    gateway = gateways.start()
    for token in ["%00abc", "x" * 41, "caf%C3%A9", "abc%20def"]:
        r = httpx.get(gateway.url(f"/api/v1/videos/{video.pk}/stream?token={token}"), timeout=5)
        assert r.status_code == 401, (token, r.text)
        assert r.json()["error"]["code"] == "authentication_failed"
