"""DELETE and GET /api/v1/comments/<id>/."""

import json

import pytest

from comments import hotstore, services
from comments.models import Comment
from tests.base import *
from tests.base import client_for


@pytest.fixture
def comment(video, alice):
    return services.post_comment(video, alice, "to be deleted").comment


def detail(comment_or_id):
    pk = getattr(comment_or_id, "pk", comment_or_id)
    return f"/api/v1/comments/{pk}/"


def listed_ids(client, video, **params):
    r = client.get(f"/api/v1/videos/{video.pk}/comments/", params)
    assert r.status_code == 200
    return [c["id"] for c in r.json()["results"]]


def test_it_lets_the_author_delete(alice_client, anon_client, comment, video, redis):
    r = alice_client.delete(detail(comment))
    assert r.status_code == 204
    assert r.content == b""
    comment.refresh_from_db()
    assert comment.status == Comment.Status.REMOVED
    assert comment.status_position is not None

    entries = redis.xrange(hotstore.stream_key(video.pk))
    assert [fields["t"] for _, fields in entries] == ["comment", "comment.removed"]
    removal_id, removal = entries[1]
    assert json.loads(removal["d"]) == {"id": comment.pk}
    assert removal["k"] == comment.cursor  # names the comment's own position
    assert comment.status_position == int(removal_id.split("-")[0]) * 1_000_000 + int(removal_id.split("-")[1])
    assert str(comment.pk) in redis.smembers(hotstore.hidden_key(video.pk))

    assert listed_ids(anon_client, video) == []
    assert listed_ids(anon_client, video, after="0-0") == []


def test_it_hides_a_deleted_comment_among_others(alice_client, anon_client, video, alice, bob):
    kept = services.post_comment(video, bob, "stays").comment
    gone = services.post_comment(video, alice, "goes").comment
    last = services.post_comment(video, bob, "stays too").comment
    assert alice_client.delete(detail(gone)).status_code == 204
    assert listed_ids(anon_client, video) == [kept.pk, last.pk]
    assert listed_ids(anon_client, video, after=kept.cursor) == [last.pk]


def test_it_refuses_another_user(bob_client, comment):
    r = bob_client.delete(detail(comment))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "permission_denied"
    comment.refresh_from_db()
    assert comment.status == Comment.Status.VISIBLE


def test_it_requires_authentication(anon_client, comment):
    r = anon_client.delete(detail(comment))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "not_authenticated"
    assert Comment.objects.get(pk=comment.pk).status == Comment.Status.VISIBLE


def test_it_rejects_a_bad_token(comment):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    r = client.delete(detail(comment))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "authentication_failed"


def test_it_lets_staff_delete_any_comment(staff, comment):
    assert client_for(staff).delete(detail(comment)).status_code == 204
    assert Comment.objects.get(pk=comment.pk).status == Comment.Status.REMOVED


def test_it_lets_a_video_moderator_delete(bob, comment, video):
    video.moderators.add(bob)
    assert client_for(bob).delete(detail(comment)).status_code == 204


def test_it_answers_a_second_delete_without_a_second_event(alice_client, comment, video, redis):
    assert alice_client.delete(detail(comment)).status_code == 204
    assert alice_client.delete(detail(comment)).status_code == 204
    assert redis.xlen(hotstore.stream_key(video.pk)) == 2


@pytest.mark.parametrize("pk", [999, 99999999999999999999])
def test_it_answers_404_for_a_missing_comment(alice_client, db, pk):
    for r in (alice_client.delete(detail(pk)), alice_client.get(detail(pk))):
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


def test_it_answers_404_for_a_non_numeric_id(alice_client, db):
    r = alice_client.get("/api/v1/comments/abc/")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_it_answers_405_for_other_methods(alice_client, comment):
    r = alice_client.put(detail(comment), {"text": "edited"}, format="json")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_it_shows_one_comment(anon_client, comment, alice):
    r = anon_client.get(detail(comment))
    assert r.status_code == 200
    assert r.json() == {
        "id": comment.pk,
        "cursor": comment.cursor,
        "video": comment.video_id,
        "author": {"id": alice.pk, "name": "alice", "roles": []},
        "text": "to be deleted",
        "created": r.json()["created"],
        "status": "visible",
        "global_id": f"local:{comment.pk}",
        "offset_ms": comment.offset_ms,
    }
    assert r.json()["created"].endswith("Z")


def test_it_shows_a_removed_comment_only_to_its_author_and_moderators(
    alice_client, bob_client, anon_client, staff, comment
):
    assert alice_client.delete(detail(comment)).status_code == 204
    for client in (anon_client, bob_client):
        r = client.get(detail(comment))
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"
    for client in (alice_client, client_for(staff)):
        r = client.get(detail(comment))
        assert r.status_code == 200
        assert r.json()["status"] == "removed"


def test_it_does_not_show_a_comment_without_a_position(anon_client, video, alice):
    """A row left without a stream position never became a comment."""
    half = Comment.objects.create(video=video, author=alice, text="half written")
    assert anon_client.get(detail(half)).status_code == 404
    assert client_for(alice).delete(detail(half)).status_code == 404
