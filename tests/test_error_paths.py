"""Bad input anywhere in the API: a 4xx with {"error": {"code", "message"}}, never a 500.

(Each endpoint's own errors are tested with the endpoint; these are the ones
every endpoint shares: parsing, content negotiation, methods, unknown URLs.)
"""

import pytest
from rest_framework.test import APIClient

from tests.base import *


@pytest.fixture
def client(alice):
    # Real requests raise nothing into the test: see what a client would get.
    from tests.base import client_for

    c = client_for(alice)
    c.raise_request_exception = False
    return c


def assert_error(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.content[:300])
    assert r["Content-Type"].startswith("application/json"), r["Content-Type"]
    error = r.json()["error"]
    assert error["code"] and error["message"]
    if code:
        assert error["code"] == code


def endpoints(video):
    return [
        "/api/v1/videos/",
        f"/api/v1/videos/{video.pk}/",
        f"/api/v1/videos/{video.pk}/comments/",
        "/api/v1/comments/1/",
    ]


@pytest.mark.parametrize("path", ["comments", "token"])
def test_it_rejects_json_nested_too_deeply(client, video, path):
    url = f"/api/v1/videos/{video.pk}/comments/" if path == "comments" else "/api/v1/auth/token/"
    r = client.post(url, data=b"[" * 100_000, content_type="application/json")
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize("body", [b'{"text": NaN}', b'{"text": Infinity}', b"\xff", b"{", b"nul\x00"])
def test_it_rejects_malformed_json(client, video, body):
    r = client.post(f"/api/v1/videos/{video.pk}/comments/", data=body, content_type="application/json")
    assert_error(r, 400, "invalid_json")


def test_it_answers_413_for_a_body_too_large(client, video):
    body = b'{"text": "' + b"x" * 3_000_000 + b'"}'
    r = client.post(f"/api/v1/videos/{video.pk}/comments/", data=body, content_type="application/json")
    assert_error(r, 413, "body_too_large")


def test_it_answers_415_for_a_form_body(client, video):
    r = client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": "hi"})
    assert_error(r, 415, "unsupported_media_type")


def test_it_refuses_a_password_that_is_not_unicode_text(anon_client, alice):
    """A lone surrogate cannot be hashed (UTF-8): wrong credentials, not a 500."""
    r = anon_client.post(
        "/api/v1/auth/token/", data=b'{"username": "alice", "password": "\\ud800"}', content_type="application/json"
    )
    assert_error(r, 400, "invalid_credentials")


@pytest.mark.parametrize("fmt", ["xml", "api", "html", ""])
def test_it_answers_404_for_an_unknown_format_suffix(client, video, fmt):
    for path in endpoints(video):
        r = client.get(path, {"format": fmt})
        if fmt == "":
            assert r.status_code in (200, 404)
        else:
            assert_error(r, 404, "not_found")


def test_it_answers_406_when_json_is_not_acceptable(client, video):
    for path in endpoints(video)[:3]:
        r = client.get(path, HTTP_ACCEPT="application/xml")
        assert r.status_code == 406, (path, r.content)
        assert r.json()["error"]["code"] == "not_acceptable"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_it_answers_405_for_unsupported_methods(client, video, method):
    for path in endpoints(video):
        if method == "patch" and path == f"/api/v1/videos/{video.pk}/":
            continue  # moderators change a video's settings with PATCH
        r = getattr(client, method)(path, {}, format="json")
        assert_error(r, 405, "method_not_allowed")


@pytest.mark.parametrize("path", ["/api/v1/", "/api/v1/nope/", "/api/v1/videos/abc/comments/", "/api/v2/videos/"])
def test_it_answers_404_in_json_for_unknown_api_urls(client, path):
    assert_error(client.get(path), 404, "not_found")


def test_it_answers_404_in_html_for_unknown_pages(db):
    r = APIClient().get("/no-such-page/")
    assert r.status_code == 404
    assert r["Content-Type"].startswith("text/html")


def test_it_answers_options(client, video):
    for path in endpoints(video):
        assert client.options(path).status_code == 200
