"""The posting endpoint in front of Django and its group commit
(comments/fastpost/), on real gateway processes.

Token clients' comment POSTs skip Django's request cycle and are written in
batches; every answer must still be the one Django's view gives. Each test
runs a gateway with the endpoint and, where it compares, one without it
(POST_GROUP_COMMIT=0), and checks on /metrics which of them took the posts.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from comments import hotstore
from comments.models import Ban, BlockedTerm, Comment
from tests.base import *
from tests.base import make_user
from tests.realtime_clients import SSEClient
from videos.models import Video

pytestmark = pytest.mark.processes

# Headers whose values differ between any two answers.
VARYING = {"date", "server", "x-request-id", "content-length"}


def token_of(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def batches_counted(gateway) -> tuple[int, float]:
    """(batches, comments in them) from the gateway's livecomment_post_batch_size histogram."""
    text = httpx.get(gateway.url("/metrics"), timeout=5).text
    count = re.search(r"^livecomment_post_batch_size_count (\S+)$", text, re.M)
    total = re.search(r"^livecomment_post_batch_size_sum (\S+)$", text, re.M)
    return (int(float(count.group(1))) if count else 0, float(total.group(1)) if total else 0.0)


def comparable(response: httpx.Response) -> tuple:
    """Status, body and headers, without what differs from answer to answer
    (ids, positions and times of new comments; dates, request ids; the
    seconds left of a time-out or throttle window, which run down between
    the two gateways' turns: `countdown()` compares those)."""
    body = response.json()
    if "id" in body:
        body = {
            k: type(v).__name__ if k in ("id", "cursor", "created", "global_id", "offset_ms") else v
            for k, v in body.items()
        }
        # Each gateway's requests come from users of its own ("poster-fast", "poster-plain").
        body["author"] = {"id": "int", "name": body["author"]["name"].rpartition("-")[0]}
    error = body.get("error") if isinstance(body.get("error"), dict) else None
    if error is not None and "retry_after" in error:
        body = {"error": {**error, "retry_after": "int", "message": re.sub(r"\d+", "N", error["message"])}}
    headers = sorted((k, "N" if k == "retry-after" else v) for k, v in response.headers.items() if k not in VARYING)
    return response.status_code, body, headers


def countdown(response: httpx.Response) -> int | None:
    error = response.json().get("error") if response.headers.get("content-type") == "application/json" else None
    return error.get("retry_after") if isinstance(error, dict) else None


THROTTLE = 24  # posts per minute per user: more than any user below posts, but one


@pytest.fixture
def pair(gateways):
    """A uvicorn gateway with the endpoint and one without, same settings."""
    env = {"THROTTLE_POST_RATE": f"{THROTTLE}/min", "DUPLICATE_TEXT_WINDOW_SECONDS": "30"}
    fast = gateways.start("uvicorn", **env)
    plain = gateways.start("uvicorn", POST_GROUP_COMMIT="0", **env)
    return fast, plain


def test_it_answers_every_kind_of_post_as_the_django_view_does(pair, transactional_db):
    fast, plain = pair
    video = Video.objects.create(title="Live", state=Video.State.LIVE)
    ended = Video.objects.create(title="Over", state=Video.State.ENDED)
    closed = Video.objects.create(title="Quiet", state=Video.State.LIVE, comments_enabled=False)
    slow = Video.objects.create(title="Slow", state=Video.State.LIVE, slow_mode_seconds=60)
    BlockedTerm.objects.create(video=video, term="forbidden", action=BlockedTerm.Action.REJECT)
    BlockedTerm.objects.create(video=video, term="questionable", action=BlockedTerm.Action.HOLD)
    banned = make_user("banned")
    Ban.objects.create(user=banned, video=video)
    timed_out = make_user("timed_out")
    Ban.objects.create(user=timed_out, video=video, expires_at=timezone.now() + timedelta(hours=1))
    inactive = make_user("inactive")
    inactive_token = token_of(inactive)
    inactive.is_active = False
    inactive.save()

    def posts_for(gateway, tag: str):
        """The same requests, in the same order, from users of this gateway's own."""
        poster, thrower = make_user(f"poster-{tag}"), make_user(f"thrower-{tag}")
        token, thrower_token = token_of(poster), token_of(thrower)
        auth = {"Authorization": f"Token {token}"}
        comments = lambda v: f"/api/v1/videos/{v.pk}/comments/"  # noqa: E731
        return [
            ("a comment", comments(video), auth, {"text": "hello"}),
            ("its Idempotency-Key again", comments(video), {**auth, "Idempotency-Key": "k1"}, {"text": "keyed"}),
            ("the key repeated", comments(video), {**auth, "Idempotency-Key": "k1"}, {"text": "keyed"}),
            ("the key, another body", comments(video), {**auth, "Idempotency-Key": "k1"}, {"text": "not keyed"}),
            ("the same text twice", comments(video), auth, {"text": "hello"}),
            ("empty text", comments(video), auth, {"text": "   "}),
            ("text too long", comments(video), auth, {"text": "x" * 501}),
            ("a control character", comments(video), auth, {"text": "a\x07b"}),
            ("text not a string", comments(video), auth, {"text": 5}),
            ("no text", comments(video), auth, {"message": "hi"}),
            ("an unknown field", comments(video), auth, {"text": "smuggled", "video": 999}),
            ("an internal flag", comments(video), auth, {"text": "flagged", "_origin": "x", "bans": {}}),
            ("a JSON array", comments(video), auth, ["hi"]),
            ("a key too long", comments(video), {**auth, "Idempotency-Key": "k" * 300}, {"text": "long key"}),
            ("a rejected term", comments(video), auth, {"text": "so forbidden"}),
            ("a held term", comments(video), auth, {"text": "questionable one"}),
            ("an ended video", comments(ended), auth, {"text": "late"}),
            ("comments off", comments(closed), auth, {"text": "shh"}),
            ("slow mode", comments(slow), auth, {"text": "slow 1"}),
            ("slow mode again", comments(slow), auth, {"text": "slow 2"}),
            ("no such video", "/api/v1/videos/999999/comments/", auth, {"text": "void"}),
            ("banned", comments(video), {"Authorization": f"Token {token_of(banned)}"}, {"text": f"ban {tag}"}),
            ("timed out", comments(video), {"Authorization": f"Token {token_of(timed_out)}"}, {"text": f"t {tag}"}),
            ("a wrong token", comments(video), {"Authorization": "Token " + "0" * 40}, {"text": "who"}),
            ("an inactive user's token", comments(video), {"Authorization": f"Token {inactive_token}"}, {"text": "x"}),
            ("no credentials", comments(video), {}, {"text": "anon"}),
            ("a malformed token header", comments(video), {"Authorization": "Token"}, {"text": "x"}),
            # Split as DRF splits it, on bytes: only ASCII whitespace separates the key.
            ("a tab after Token", comments(video), {"Authorization": f"Token\t{token}".encode()}, {"text": "tab"}),
            ("a no-break space", comments(video), {"Authorization": b"Token\xa0" + token.encode()}, {"text": "nbsp"}),
            ("a next-line char", comments(video), {"Authorization": b"Token\x85" + token.encode()}, {"text": "nel"}),
            ("a key and more", comments(video), {"Authorization": f"Token {token} {token}"}, {"text": "two"}),
            ("a Bearer token", comments(video), {"Authorization": f"Bearer {token}"}, {"text": "bearer"}),
            ("a wrong Bearer token", comments(video), {"Authorization": "Bearer " + "0" * 40}, {"text": "who"}),
            ("Basic credentials", comments(video), {"Authorization": "Basic cG9zdGVyOnB3"}, {"text": "basic"}),
            ("an unknown scheme", comments(video), {"Authorization": f"Foo {token}"}, {"text": "foo"}),
        ] + [
            (f"throttled {n}", comments(video), {"Authorization": f"Token {thrower_token}"}, {"text": f"t{n}"})
            for n in range(1, THROTTLE + 2)
        ]

    waits: dict[str, list] = {"fast": [], "plain": []}

    def run(gateway, tag):
        answers = []
        with httpx.Client(base_url=gateway.base, timeout=10) as client:
            for name, path, headers, body in posts_for(gateway, tag):
                r = client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json", **headers})
                answers.append((name, comparable(r)))
                waits[tag].append(countdown(r))
            # Not JSON, or not asking for JSON: Django's parser and negotiation answer.
            auth = {"Authorization": f"Token {token_of(make_user(f'other-{tag}'))}"}
            path = f"/api/v1/videos/{video.pk}/comments/"
            for name, extra in [
                ("malformed JSON", {"content": b'{"text": ', "headers": {"Content-Type": "application/json"}}),
                ("NaN", {"content": b'{"text": NaN}', "headers": {"Content-Type": "application/json"}}),
                ("a form", {"data": {"text": "form"}}),
                ("XML wanted", {"json": {"text": "x"}, "headers": {"Accept": "application/xml"}}),
            ]:
                headers = {**auth, **extra.pop("headers", {})}
                answers.append((name, comparable(client.post(path, headers=headers, **extra))))
        return answers

    before = batches_counted(fast)
    fast_answers = run(fast, "fast")
    plain_answers = run(plain, "plain")
    for (name, got), (_, expected) in zip(fast_answers, plain_answers, strict=True):
        assert got == expected, name
    # The same seconds left, but for the time that passed between the two turns
    # (a time-out, slow mode, the throttle).
    assert sum(wait is not None for wait in waits["fast"]) >= 3
    for fast_wait, plain_wait in zip(waits["fast"], waits["plain"], strict=True):
        assert (fast_wait is None) == (plain_wait is None)
        if fast_wait is not None:
            assert fast_wait > 0 and abs(fast_wait - plain_wait) <= 5, (fast_wait, plain_wait)

    # The cases are what they say (the two paths agreeing on a 500 would pass above).
    statuses = dict((name, answer[0]) for name, answer in fast_answers)
    assert statuses["a comment"] == 201 and statuses["its Idempotency-Key again"] == 201
    assert statuses["the key repeated"] == 200 and statuses["the same text twice"] == 409
    assert statuses["the key, another body"] == 422
    assert statuses["a held term"] == 201 and statuses["a rejected term"] == 400
    assert statuses["slow mode again"] == 429 and statuses[f"throttled {THROTTLE}"] == 201
    assert statuses[f"throttled {THROTTLE + 1}"] == 429
    assert statuses["a wrong token"] == statuses["no credentials"] == 401
    assert statuses["a tab after Token"] == 201
    assert statuses["a no-break space"] == statuses["a next-line char"] == statuses["a key and more"] == 401
    assert statuses["banned"] == statuses["timed out"] == statuses["comments off"] == 403
    assert statuses["no such video"] == 404 and statuses["an ended video"] == 409
    assert statuses["an unknown field"] == statuses["an internal flag"] == statuses["no text"] == 400
    assert (statuses["malformed JSON"], statuses["a form"], statuses["XML wanted"]) == (400, 415, 406)
    assert all(status < 500 for status in statuses.values())

    # The endpoint took the token posts with a JSON object; the other gateway none.
    batches, comments = batches_counted(fast)
    assert comments - before[1] >= 20
    assert batches_counted(plain) == (0, 0.0)


def test_it_writes_concurrent_posts_in_batches_each_once_and_in_stream_order(gateways, transactional_db):
    gateway = gateways.start("uvicorn")
    video = Video.objects.create(title="Busy", state=Video.State.LIVE)
    tokens = [token_of(make_user(f"poster{i}")) for i in range(8)]
    viewer = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream")).wait_open()
    per_poster = 15

    async def post_all():
        async with httpx.AsyncClient(base_url=gateway.base, timeout=20) as client:

            async def poster(i: int):
                answers = []
                for n in range(per_poster):
                    r = await client.post(
                        f"/api/v1/videos/{video.pk}/comments/",
                        json={"text": f"p{i} n{n}"},
                        headers={"Authorization": f"Token {tokens[i]}", "Idempotency-Key": f"{i}-{n}"},
                    )
                    answers.append(r)
                return answers

            return [r for answers in await asyncio.gather(*(poster(i) for i in range(8))) for r in answers]

    try:
        answers = asyncio.run(post_all())
        assert [r.status_code for r in answers] == [201] * len(answers), [r.text for r in answers if r.is_error]
        total = len(answers)
        assert viewer.wait_for_comments(total, timeout=20), len(viewer.comments())

        # Batched: fewer batches than comments.
        batches, comments = batches_counted(gateway)
        assert comments == total and batches < total

        # Every comment once, in the database and the stream, and the viewer got
        # them in stream order, each once.
        stored = list(Comment.objects.filter(video=video).order_by("position"))
        assert len(stored) == total
        assert sorted(r.json()["id"] for r in answers) == sorted(c.pk for c in stored)
        stream = redis_stream_ids(video)
        assert stream == [c.cursor for c in stored]
        assert viewer.comment_ids() == [c.pk for c in stored]
        # One message per comment, each naming the one before it: no gap to repair.
        stats = httpx.get(gateway.url("/gateway/stats"), timeout=5).json()
        assert stats["received_by_video"][str(video.pk)] == total
        assert stats.get("gap_repairs", 0) == 0 and stats.get("tip_repairs", 0) == 0
        # Each poster's comments in the order it sent them.
        for i in range(8):
            mine = [c.text for c in stored if c.text.startswith(f"p{i} ")]
            assert mine == [f"p{i} n{n}" for n in range(per_poster)]
    finally:
        viewer.close()


def redis_stream_ids(video) -> list[str]:
    from livecomment.lib import redis_client

    return [entry_id for entry_id, _ in redis_client.for_video(video.pk).xrange(hotstore.stream_key(video.pk))]


def session_cookie(user) -> str:
    """A signed-in session of `user` (the login page has tests of its own)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return session.session_key


def test_it_hands_a_session_post_to_django_and_its_csrf_check(gateways, transactional_db, alice):
    gateway = gateways.start("uvicorn")
    video = Video.objects.create(title="Live", state=Video.State.LIVE)
    with httpx.Client(base_url=gateway.base, timeout=10, cookies={"sessionid": session_cookie(alice)}) as client:
        client.get(f"/videos/{video.pk}/")  # sets the CSRF cookie
        csrf = client.cookies.get("csrftoken")
        assert csrf
        # No CSRF token: Django refuses it (the endpoint never takes cookie sessions).
        r = client.post(f"/api/v1/videos/{video.pk}/comments/", json={"text": "from the page"})
        assert r.status_code == 403, r.text
        assert not Comment.objects.filter(video=video).exists()
        r = client.post(
            f"/api/v1/videos/{video.pk}/comments/",
            json={"text": "from the page"},
            headers={"X-CSRFToken": csrf, "Referer": gateway.url("/")},
        )
        assert r.status_code == 201, r.text
        assert Comment.objects.get(video=video).author == alice
    assert batches_counted(gateway) == (0, 0.0)


def test_it_takes_the_paths_of_the_urlconfs_comments_route_and_no_other():
    from django.urls import reverse

    from comments.fastpost.endpoint import ROUTE, video_id_of

    assert video_id_of(reverse(ROUTE, args=[3])) == 3
    assert video_id_of(reverse(ROUTE, args=[2**63 - 1])) == 2**63 - 1
    assert video_id_of(f"/api/v1/videos/{2**63}/comments/") is None  # the id converter's 404
    assert video_id_of("/api/v1/videos/3/comments") is None  # Django's trailing-slash handling
    assert video_id_of("/api/v1/videos/3/comments/x") is None
    assert video_id_of("/api/v1/videos/3/") is None
