"""Named users and a live video, shared by the tests (healthchecks style)."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from videos.models import Video


def make_user(username: str, staff: bool = False):
    User = get_user_model()
    user = User.objects.create_user(username, password=f"{username}-password", is_staff=staff)
    return user


@pytest.fixture
def alice(db):
    """A viewer who posts: the author in most tests."""
    return make_user("alice")


@pytest.fixture
def bob(db):
    """Another viewer."""
    return make_user("bob")


@pytest.fixture
def staff(db):
    """A site-wide moderator."""
    return make_user("staff", staff=True)


@pytest.fixture
def video(db):
    return Video.objects.create(title="Live now", state=Video.State.LIVE)


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def alice_client(alice):
    return client_for(alice)


@pytest.fixture
def bob_client(bob):
    return client_for(bob)
