"""Django requests under ASGI: no thread per request (livecomment/server/asgi_handler.py,
livecomment/server/async_middleware.py), and the stock middlewares still do their job."""

import asyncio
import json
import threading

import httpx
import pytest
from asgiref.sync import SyncToAsync
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.signals import connection_created
from rest_framework.authtoken.models import Token

from comments.models import Comment
from livecomment.asgi import application
from tests.base import make_user
from videos.models import Video

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def thread_pool(settings):
    # As in a gateway: the comment endpoints run in the API thread pool.
    settings.API_THREAD_POOL = True


@pytest.fixture
def started_threads(monkeypatch):
    started = []
    original = threading.Thread.start

    def start(thread):
        started.append(thread.name)
        return original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


def asgi_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://localhost")


def run(coro):
    return asyncio.run(coro)


def test_it_posts_comments_without_starting_a_thread_per_request(thread_pool, started_threads):
    alice = make_user("alice")
    video = Video.objects.create(title="Live", state=Video.State.LIVE)
    token = Token.objects.create(user=alice)

    async def post_many():
        async with asgi_client() as client:
            headers = {"Authorization": f"Token {token.key}"}
            url = f"/api/v1/videos/{video.pk}/comments/"
            warm = await client.post(url, json={"text": "warm-up"}, headers=headers)
            assert warm.status_code == 201, warm.text
            before = len(started_threads)
            statuses = [
                (await client.post(url, json={"text": f"comment {i}"}, headers=headers)).status_code for i in range(5)
            ]
            listed = await client.get(url)
            return statuses, listed, started_threads[before:]

    statuses, listed, new_threads = run(post_many())
    assert statuses == [201] * 5
    assert listed.status_code == 200
    assert [c["text"] for c in listed.json()["results"]][-5:] == [f"comment {i}" for i in range(5)]
    # Django's stock handler starts two threads per request (its
    # ThreadSensitiveContext executor and the one that joins it); the only
    # threads allowed are the API pool's own (the loop's default executor,
    # which may still be growing to its size).
    assert [name for name in new_threads if not name.startswith("asyncio_")] == []
    assert Comment.objects.filter(video=video).count() == 6


def test_it_answers_a_json_error_from_the_pool_rendered_once(thread_pool):
    video = Video.objects.create(title="Live", state=Video.State.LIVE)

    async def post_anonymously():
        async with asgi_client() as client:
            return await client.post(f"/api/v1/videos/{video.pk}/comments/", json={"text": "hi"})

    response = run(post_anonymously())
    assert response.status_code in (401, 403)
    assert set(response.json()["error"]) >= {"code", "message"}
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["X-Frame-Options"] == "DENY"  # XFrameOptionsMiddleware ran
    assert "X-Content-Type-Options" in response.headers  # SecurityMiddleware ran


def test_it_runs_a_sync_view_in_its_own_thread_and_closes_up(started_threads):
    # The admin login page is a sync view: Django's per-request thread is
    # used, and the handler then closes the response there (stock behaviour).
    async def get_login():
        async with asgi_client() as client:
            return await client.get("/admin/login/")

    response = run(get_login())
    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    assert started_threads  # the per-request thread


def test_it_closes_the_database_connection_of_a_requests_own_thread(monkeypatch):
    # A sync view runs in a thread that is thrown away after the request.
    # With persistent connections (CONN_MAX_AGE, 60 s by default on
    # PostgreSQL) request_finished keeps that thread's connection open, where
    # nothing can reuse or close it: each request to a sync view (the video
    # API, pages, /healthz, the admin) left one more database session open
    # until a full garbage collection, which a gateway's GC settings make rare.
    Video.objects.create(title="Live", state=Video.State.LIVE)
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "CONN_MAX_AGE", 60)
    opened = []

    def note(sender, connection, **kwargs):
        opened.append(connection)

    async def get_videos():
        async with asgi_client() as client:
            return [(await client.get("/api/v1/videos/")).status_code for _ in range(3)]

    connection_created.connect(note)
    try:
        statuses = run(get_videos())
    finally:
        connection_created.disconnect(note)
    left_open = [c for c in opened if c.connection is not None]
    for c in left_open:
        c.connection.close()  # the raw connection: its wrapper belongs to a finished thread
    assert statuses == [200] * 3
    assert len(opened) == 3  # one per request: each ran in a thread of its own
    assert left_open == []


def test_it_logs_in_with_a_session_and_posts_with_csrf_through_asgi(thread_pool):
    alice = make_user("alice")
    video = Video.objects.create(title="Live", state=Video.State.LIVE)

    async def flow():
        async with asgi_client() as client:
            page = await client.get("/accounts/login/")
            csrf = page.cookies["csrftoken"]
            login = await client.post(
                "/accounts/login/",
                data={"username": "alice", "password": "alice-password", "csrfmiddlewaretoken": csrf},
                headers={"Referer": "http://localhost/accounts/login/"},
            )
            url = f"/api/v1/videos/{video.pk}/comments/"
            without_csrf = await client.post(url, json={"text": "no token"})
            with_csrf = await client.post(
                url,
                json={"text": "with token"},
                headers={"X-CSRFToken": client.cookies["csrftoken"], "Referer": "http://localhost/"},
            )
            return login, without_csrf, with_csrf

    login, without_csrf, with_csrf = run(flow())
    assert login.status_code == 302 and "sessionid" in login.cookies  # the session was saved
    assert without_csrf.status_code == 403
    assert with_csrf.status_code == 201, with_csrf.text
    comment = Comment.objects.get(video=video)
    assert (comment.text, comment.author) == ("with token", alice)


def test_it_serves_static_files_through_whitenoise_in_the_event_loop(started_threads, settings):
    async def get_script():
        async with asgi_client() as client:
            return await client.get(settings.STATIC_URL + "js/chat.js")

    response = run(get_script())
    assert response.status_code == 200
    assert b"EventSource" in response.content


def test_it_keeps_no_thread_sensitive_executor_after_async_requests(thread_pool):
    video = Video.objects.create(title="Live", state=Video.State.LIVE)

    async def get_twice():
        async with asgi_client() as client:
            await client.get(f"/api/v1/videos/{video.pk}/comments/")
            return await client.get(f"/api/v1/videos/{video.pk}/comments/")

    response = run(get_twice())
    assert response.status_code == 200 and json.loads(response.content)["results"] == []
    assert len(SyncToAsync.context_to_thread_executor) == 0
    assert get_user_model().objects.count() == 0
