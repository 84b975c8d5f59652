"""GET /api/v1/videos/<id>/comments/: cursor pagination, from the stream or the database.

The stream (Redis) holds the recent range, the database everything; a page
must not depend on which one served it. These tests post comments, read every
page while the stream holds them, then trim or delete the stream and read the
same pages again from the database.
"""

import pytest

from comments import cursors, hotstore, queries, services
from comments.models import Comment
from tests.base import *
from tests.base import client_for


def url(video, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/v1/videos/{video.pk}/comments/" + (f"?{query}" if query else "")


def post_many(video, author, n, prefix="comment"):
    return [services.post_comment(video, author, f"{prefix} {i}").comment for i in range(n)]


def walk_after(client, video, limit, after=cursors.ZERO):
    """Every page from `after` forwards; returns the list of page bodies."""
    pages = []
    while True:
        r = client.get(url(video, after=after, limit=limit))
        assert r.status_code == 200, r.content
        body = r.json()
        pages.append(body)
        if not body["has_more"]:
            return pages
        after = body["cursor"]


def walk_before(client, video, limit):
    """Every page from the newest backwards (history)."""
    pages = []
    r = client.get(url(video, limit=limit))
    while True:
        assert r.status_code == 200, r.content
        body = r.json()
        pages.append(body)
        if not body["has_more"]:
            return pages
        r = client.get(url(video, before=body["cursor"], limit=limit))


def ids(pages):
    return [c["id"] for page in pages for c in page["results"]]


def test_it_returns_the_newest_page_oldest_first(anon_client, video, alice):
    posted = post_many(video, alice, 5)
    r = anon_client.get(url(video, limit=3))
    assert r.status_code == 200
    body = r.json()
    assert [c["id"] for c in body["results"]] == [c.pk for c in posted[2:]]
    assert body["has_more"] is True
    assert body["cursor"] == posted[2].cursor  # continue with before=
    assert body["prev_cursor"] == posted[2].cursor
    assert body["next_cursor"] == posted[4].cursor  # catch up with after=
    first = body["results"][0]
    assert set(first) == {"id", "cursor", "video", "author", "text", "created", "global_id", "offset_ms"}
    assert first["global_id"] == f"local:{posted[2].pk}"
    assert first["author"] == {"id": alice.pk, "name": "alice", "roles": []}
    assert first["text"] == "comment 2"


def test_it_defaults_to_50(anon_client, video, alice):
    post_many(video, alice, 55)
    body = anon_client.get(url(video)).json()
    assert len(body["results"]) == 50 and body["has_more"] is True


def test_it_catches_up_after_a_cursor(anon_client, video, alice):
    posted = post_many(video, alice, 6)
    body = anon_client.get(url(video, after=posted[1].cursor, limit=3)).json()
    assert [c["id"] for c in body["results"]] == [c.pk for c in posted[2:5]]
    assert body["has_more"] is True
    assert body["cursor"] == body["next_cursor"] == posted[4].cursor
    body = anon_client.get(url(video, after=posted[4].cursor, limit=3)).json()
    assert [c["id"] for c in body["results"]] == [posted[5].pk]
    assert body["has_more"] is False
    # Nothing newer: the cursor stays where the client is.
    body = anon_client.get(url(video, after=posted[5].cursor)).json()
    assert body["results"] == [] and body["has_more"] is False
    assert body["cursor"] == posted[5].cursor


def test_it_pages_between_two_cursors(anon_client, video, alice):
    posted = post_many(video, alice, 6)
    body = anon_client.get(url(video, after=posted[0].cursor, before=posted[5].cursor, limit=3)).json()
    assert [c["id"] for c in body["results"]] == [c.pk for c in posted[1:4]]
    assert body["has_more"] is True
    body = anon_client.get(url(video, after=posted[3].cursor, before=posted[5].cursor, limit=3)).json()
    assert [c["id"] for c in body["results"]] == [posted[4].pk]
    assert body["has_more"] is False


def test_it_answers_an_empty_video(anon_client, video):
    r = anon_client.get(url(video))
    assert r.status_code == 200
    body = r.json()
    assert body["results"] == [] and body["has_more"] is False
    assert body["next_cursor"] == cursors.ZERO
    assert anon_client.get(url(video, after=cursors.ZERO)).json()["results"] == []


def test_it_serves_identical_pages_from_the_stream_and_the_database(anon_client, video, alice, bob, redis):
    posted = post_many(video, alice, 20) + post_many(video, bob, 10, prefix="bob")
    # From the very start only the database knows nothing was trimmed; from
    # any position the stream holds, the stream serves.
    assert queries.page_after(video.pk, posted[0].cursor, 7).source == "stream"
    assert queries.page_before(video.pk, None, 7).source == "stream"

    forward = walk_after(anon_client, video, 7)
    backward = walk_before(anon_client, video, 7)
    everything = [c.pk for c in posted]
    assert ids(forward) == everything
    assert [c["id"] for p in reversed(backward) for c in p["results"]] == everything
    assert len(forward) == 5 and len(backward) == 5

    # The same pages from the database, page by page.
    after = cursors.ZERO
    for page in forward:
        from_db = queries.page_after(video.pk, after, 7, prefer_stream=False)
        assert from_db.source == "database"
        assert from_db.results == page["results"]
        assert from_db.has_more == page["has_more"]
        after = page["cursor"]
    before = None
    for page in backward:
        from_db = queries.page_before(video.pk, before, 7, prefer_stream=False)
        assert from_db.results == page["results"]
        assert from_db.has_more == page["has_more"]
        before = page["cursor"]

    # Trim part of the stream: pages straddle the stream and the database.
    redis.xtrim(hotstore.stream_key(video.pk), maxlen=12, approximate=False)
    assert walk_after(anon_client, video, 7) == forward
    assert walk_before(anon_client, video, 7) == backward
    assert queries.page_after(video.pk, posted[-12].cursor, 7).source == "stream"
    # Before the stream's first entry it cannot know what was trimmed.
    assert queries.page_after(video.pk, posted[-13].cursor, 7).source == "database"

    # No stream at all: everything from the database, the same.
    redis.xtrim(hotstore.stream_key(video.pk), maxlen=0, approximate=False)
    assert queries.page_after(video.pk, posted[20].cursor, 7).source == "database"
    assert walk_after(anon_client, video, 7) == forward
    assert walk_before(anon_client, video, 7) == backward
    redis.delete(hotstore.stream_key(video.pk))
    assert walk_after(anon_client, video, 7) == forward
    assert walk_before(anon_client, video, 7) == backward


def test_it_serves_every_page_size_the_same_from_both(anon_client, video, alice):
    post_many(video, alice, 12)
    for limit in (1, 5, 12, 13, 200):
        after = cursors.ZERO
        while True:
            stream = queries.page_after(video.pk, after, limit)
            database = queries.page_after(video.pk, after, limit, prefer_stream=False)
            assert (stream.results, stream.has_more) == (database.results, database.has_more)
            if not stream.has_more:
                break
            after = stream.last_cursor
        before = None
        while True:
            stream = queries.page_before(video.pk, before, limit)
            database = queries.page_before(video.pk, before, limit, prefer_stream=False)
            assert (stream.results, stream.has_more) == (database.results, database.has_more)
            if not stream.has_more:
                break
            before = stream.first_cursor


def test_it_leaves_removed_comments_out_of_both(anon_client, video, alice, redis):
    posted = post_many(video, alice, 10)
    author = client_for(alice)
    removed = {posted[0].pk, posted[4].pk, posted[9].pk}
    for pk in removed:
        assert author.delete(f"/api/v1/comments/{pk}/").status_code == 204
    expected = [c.pk for c in posted if c.pk not in removed]

    assert queries.page_after(video.pk, posted[1].cursor, 50).source == "stream"
    forward = walk_after(anon_client, video, 3)
    backward = walk_before(anon_client, video, 3)
    assert ids(forward) == expected
    assert [c["id"] for p in reversed(backward) for c in p["results"]] == expected
    # A removal event in the stream is not a comment: catch-up past it is empty.
    body = anon_client.get(url(video, after=posted[9].cursor)).json()
    assert body["results"] == []

    redis.delete(hotstore.stream_key(video.pk))
    assert queries.page_after(video.pk, posted[1].cursor, 50).source == "database"
    assert walk_after(anon_client, video, 3) == forward
    assert walk_before(anon_client, video, 3) == backward


def test_it_skips_comments_written_without_a_position(anon_client, video, alice):
    """A row whose stream append never completed does not exist to readers."""
    post_many(video, alice, 2)
    Comment.objects.create(video=video, author=alice, text="half written")
    body = anon_client.get(url(video)).json()
    assert [c["text"] for c in body["results"]] == ["comment 0", "comment 1"]
    page = queries.page_after(video.pk, cursors.ZERO, 50, prefer_stream=False)
    assert [c["text"] for c in page.results] == ["comment 0", "comment 1"]


def test_it_keeps_other_videos_apart(anon_client, video, alice):
    from videos.models import Video

    other = Video.objects.create(title="Other", state=Video.State.LIVE)
    post_many(video, alice, 3)
    post_many(other, alice, 2, prefix="other")
    assert len(anon_client.get(url(video)).json()["results"]) == 3
    assert [c["text"] for c in anon_client.get(url(other)).json()["results"]] == ["other 0", "other 1"]
    assert len(queries.page_after(other.pk, cursors.ZERO, 50, prefer_stream=False).results) == 2


@pytest.mark.parametrize(
    "params, code",
    [
        ({"after": "abc"}, "invalid_cursor"),
        ({"after": ""}, "invalid_cursor"),
        ({"before": "1-"}, "invalid_cursor"),
        ({"before": "-1-0"}, "invalid_cursor"),
        ({"after": "1764000000000"}, "invalid_cursor"),
        ({"after": "1764000000000-0-0"}, "invalid_cursor"),
        ({"after": "99999999999999-0"}, "invalid_cursor"),
        ({"after": "1-1234567"}, "invalid_cursor"),
        ({"after": "１７６４-0"}, "invalid_cursor"),  # non-ASCII digits
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "201"}, "invalid_limit"),
        ({"limit": "-1"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
        ({"limit": "1.5"}, "invalid_limit"),
        ({"limit": "99999999999999999999999"}, "invalid_limit"),
        # Strict: only what the schema's integer allows (int() would take all of these).
        ({"limit": ""}, "invalid_limit"),
        ({"limit": "abc"}, "invalid_limit"),
        ({"limit": "1e3"}, "invalid_limit"),
        ({"limit": "+5"}, "invalid_limit"),
        ({"limit": " 5"}, "invalid_limit"),
        ({"limit": "5 "}, "invalid_limit"),
        ({"limit": "1_0"}, "invalid_limit"),
        ({"limit": "\u0665"}, "invalid_limit"),  # ARABIC-INDIC DIGIT FIVE
        ({"limit": "０5"}, "invalid_limit"),  # fullwidth zero
    ],
)
def test_it_rejects_bad_parameters(anon_client, video, params, code):
    r = anon_client.get(f"/api/v1/videos/{video.pk}/comments/", params)
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == code
    assert error["message"]


@pytest.mark.parametrize("limit", ["1", "200", "007"])
def test_it_accepts_limits_in_range(anon_client, video, limit):
    assert anon_client.get(f"/api/v1/videos/{video.pk}/comments/", {"limit": limit}).status_code == 200


@pytest.mark.parametrize(
    "params, code",
    [
        ({"after": "1-0", "wait": ""}, "invalid_wait"),
        ({"after": "1-0", "wait": "0"}, "invalid_wait"),
        ({"after": "1-0", "wait": "31"}, "invalid_wait"),
        ({"after": "1-0", "wait": "1e1"}, "invalid_wait"),
        ({"after": "1-0", "wait": "+5"}, "invalid_wait"),
        ({"after": "1-0", "wait": " 5"}, "invalid_wait"),
        ({"after": "1-0", "wait": "1_0"}, "invalid_wait"),
        ({"after": "1-0", "wait": "\u0665"}, "invalid_wait"),
        ({"wait": "5"}, "missing_after"),
        ({"wait": "5", "after": ""}, "missing_after"),
        ({"wait": "5", "before": "1-0"}, "missing_after"),
    ],
)
def test_it_rejects_a_bad_long_poll_before_waiting(anon_client, video, params, code):
    """wait= is parsed as strictly as limit= and needs after= (the schema's x-requires)."""
    r = anon_client.get(f"/api/v1/videos/{video.pk}/comments/", params)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == code


@pytest.mark.parametrize("prefer_stream", [True, False])
def test_it_answers_cursors_beyond_a_64_bit_position(anon_client, video, alice, redis, prefer_stream):
    """9999999999999-999999 is a valid stream ID but overflows the position column."""
    post_many(video, alice, 2)
    if not prefer_stream:
        redis.delete(hotstore.stream_key(video.pk))
    r = anon_client.get(url(video, before="9999999999999-999999"))
    assert r.status_code == 200, r.content
    assert [c["text"] for c in r.json()["results"]] == ["comment 0", "comment 1"]
    r = anon_client.get(url(video, after="9999999999999-999999"))
    assert r.status_code == 200, r.content
    assert r.json()["results"] == []
    r = anon_client.get(url(video, after="0-0", before="9999999999999-0"))
    assert r.status_code == 200, r.content
    assert len(r.json()["results"]) == 2


@pytest.mark.parametrize("prefer_stream", [True, False])
def test_it_reads_cursors_with_leading_zeros_as_the_same_position(anon_client, video, alice, redis, prefer_stream):
    """ "00-0" is the start, as "0-0" is: before it there is nothing (Redis
    refuses the exclusive end "(00-0", which was a 500)."""
    post_many(video, alice, 2)
    if not prefer_stream:
        redis.delete(hotstore.stream_key(video.pk))
    r = anon_client.get(url(video, before="00-0"))
    assert r.status_code == 200, r.content
    assert r.json()["results"] == []
    first = anon_client.get(url(video)).json()["results"][0]["cursor"]
    ms, seq = first.split("-")
    r = anon_client.get(url(video, after=f"{ms}-00{seq}"))
    assert [c["text"] for c in r.json()["results"]] == ["comment 1"]


@pytest.mark.parametrize("video_id", ["999", "99999999999999999999"])
def test_it_answers_404_for_an_unknown_video(anon_client, db, video_id):
    r = anon_client.get(f"/api/v1/videos/{video_id}/comments/")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("cursor", ["１７６４-0", "1-0\n", "٣-0"])
@pytest.mark.parametrize("name", ["after", "before"])
def test_it_rejects_cursors_redis_would_not_parse(anon_client, video, alice, name, cursor):
    post_many(video, alice, 2)  # a stream to read, so the cursor would reach Redis
    r = anon_client.get(f"/api/v1/videos/{video.pk}/comments/", {name: cursor})
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "invalid_cursor"


def test_it_documents_the_null_cursor_of_an_empty_first_page(client, video):
    """The schema must allow what the empty history page returns."""
    import json as _json

    body = client.get(url(video)).json()
    assert body["cursor"] is None and body["prev_cursor"] is None
    schema = _json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    page = schema["components"]["schemas"]["CommentPage"]["properties"]
    assert page["cursor"].get("nullable") is True
    assert page["prev_cursor"].get("nullable") is True
