"""POST /api/v1/auth/token/ (obtain) and DELETE (revoke)."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.base import *

URL = "/api/v1/auth/token/"


def obtain(client, body, **kwargs):
    return client.post(URL, body, format="json", **kwargs)


def with_token(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def assert_error(r, status, code):
    assert r.status_code == status, r.content
    error = r.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_it_gives_a_token_for_good_credentials(anon_client, alice, video):
    r = obtain(anon_client, {"username": "alice", "password": "alice-password"})
    assert r.status_code == 200
    key = r.json()["token"]
    assert r.json() == {"token": key}
    assert Token.objects.get(user=alice).key == key
    # The token works: alice can post.
    r = with_token(key).post(f"/api/v1/videos/{video.pk}/comments/", {"text": "hi"}, format="json")
    assert r.status_code == 201
    assert r.json()["author"]["name"] == "alice"


def test_it_gives_the_same_token_twice(anon_client, alice):
    body = {"username": "alice", "password": "alice-password"}
    assert obtain(anon_client, body).json() == obtain(anon_client, body).json()


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": "wrong"},
        {"username": "nobody", "password": "alice-password"},
        {"username": "ALICE", "password": "alice-password"},
        {"username": "alice", "password": "alice-password "},
    ],
)
def test_it_refuses_bad_credentials(anon_client, alice, body):
    assert_error(obtain(anon_client, body), 400, "invalid_credentials")
    assert not Token.objects.exists()


def test_it_refuses_an_inactive_user(anon_client, alice):
    alice.is_active = False
    alice.save()
    assert_error(obtain(anon_client, {"username": "alice", "password": "alice-password"}), 400, "invalid_credentials")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "alice"},
        {"password": "alice-password"},
        {"username": "", "password": ""},
        {"username": "alice", "password": ""},
        {"username": 5, "password": "alice-password"},
        {"username": "alice", "password": 123456},
        {"username": ["alice"], "password": "alice-password"},
        {"username": {"name": "alice"}, "password": "alice-password"},
        {"username": None, "password": None},
        {"username": "alice", "password": True},
    ],
)
def test_it_rejects_missing_or_mistyped_fields(anon_client, alice, body):
    assert_error(obtain(anon_client, body), 400, "missing_credentials")


@pytest.mark.parametrize("body", [["alice", "alice-password"], "alice", 42, None])
def test_it_rejects_a_body_that_is_not_an_object(anon_client, alice, body):
    r = anon_client.post(URL, data=__import__("json").dumps(body), content_type="application/json")
    assert_error(r, 400, "invalid_body")


@pytest.mark.parametrize("data", [b'{"username": "alice", ', b"", b"\xff\xfe", b"{'username': 'alice'}"])
def test_it_rejects_invalid_json(anon_client, alice, data):
    r = anon_client.post(URL, data=data, content_type="application/json")
    if data == b"":
        # An empty body is an empty object to DRF: no credentials.
        assert_error(r, 400, "missing_credentials")
    else:
        assert_error(r, 400, "invalid_json")


def test_it_rejects_a_form_body(anon_client, alice):
    r = anon_client.post(URL, {"username": "alice", "password": "alice-password"})
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("username", ["ali\x00ce", "alice\n", "a" * 10_000])
def test_it_refuses_usernames_no_account_can_have(anon_client, alice, username):
    """Including NUL, which PostgreSQL text cannot hold (a 500 if it reached the query)."""
    assert_error(obtain(anon_client, {"username": username, "password": "alice-password"}), 400, "invalid_credentials")


def test_it_refuses_get(anon_client, db):
    assert_error(anon_client.get(URL), 405, "method_not_allowed")


def test_it_revokes_the_token(anon_client, alice, video):
    key = obtain(anon_client, {"username": "alice", "password": "alice-password"}).json()["token"]
    client = with_token(key)
    r = client.delete(URL)
    assert r.status_code == 204
    assert not Token.objects.filter(user=alice).exists()

    # The old token is dead everywhere.
    assert_error(client.delete(URL), 401, "authentication_failed")
    r = client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": "hi"}, format="json")
    assert_error(r, 401, "authentication_failed")
    assert_error(client.get("/api/v1/videos/"), 401, "authentication_failed")

    # Signing in again gives a new one.
    fresh = obtain(anon_client, {"username": "alice", "password": "alice-password"}).json()["token"]
    assert fresh != key
    assert with_token(fresh).get("/api/v1/videos/").status_code == 200


def test_it_revokes_only_the_callers_token(anon_client, alice, bob):
    alice_key = obtain(anon_client, {"username": "alice", "password": "alice-password"}).json()["token"]
    bob_key = obtain(anon_client, {"username": "bob", "password": "bob-password"}).json()["token"]
    assert with_token(alice_key).delete(URL).status_code == 204
    assert with_token(bob_key).get("/api/v1/videos/").status_code == 200


def test_it_requires_authentication_to_revoke(anon_client, db):
    assert_error(anon_client.delete(URL), 401, "not_authenticated")


@pytest.mark.parametrize(
    "header",
    [
        "Token",
        "Token a b",
        "Token \x00",
        "Token " + "x" * 1000,
        "Bearer",
        "Bearer abc",
        "Bearer " + "0" * 40,
        "Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=",
        "Foo x",
        "Token\xa0abc",
        "abc",
    ],
)
def test_it_answers_malformed_or_foreign_authorization_headers_with_401(alice, header):
    """Credentials the API cannot read are refused, never a silent anonymous read."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_error(client.get("/api/v1/videos/"), 401, "authentication_failed")


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer", "TOKEN"])
def test_it_takes_the_token_as_token_or_bearer(alice, video, scheme):
    key = Token.objects.create(user=alice).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    r = client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": f"via {scheme}"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["author"]["name"] == "alice"
    assert client.delete(URL).status_code == 204  # sign-out too
    assert_error(client.get("/api/v1/videos/"), 401, "authentication_failed")  # the revoked key


def test_it_is_anonymous_without_an_authorization_header(anon_client, video):
    assert anon_client.get("/api/v1/videos/").status_code == 200
    r = anon_client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": "who"}, format="json")
    assert_error(r, 401, "not_authenticated")


def test_it_signs_in_with_a_session_too(alice, video):
    client = APIClient()
    client.force_login(alice)
    r = client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": "from the web page"}, format="json")
    assert r.status_code == 201
