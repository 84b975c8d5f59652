"""What an open SSE stream keeps alive in its gateway process (issue 6: RSS
per idle connection). The stream application runs in-process here against a
minimal stand-in for the server's receive/send; the figures themselves come
from `python -m bench fanout` (docs/BENCHMARKS.md)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref

import pytest

from dispatcher.hub import get_hub
from dispatcher.sse import SSEEndpoint
from tests.base import video

pytestmark = pytest.mark.django_db(transaction=True)


class Scope(dict):
    """A scope that can be weakly referenced (a plain dict cannot)."""


def scope_for(video_id: int) -> Scope:
    path = f"/api/v1/videos/{video_id}/stream"
    return Scope(
        type="http",
        asgi={"version": "3.0"},
        http_version="1.1",
        method="GET",
        scheme="http",
        path=path,
        raw_path=path.encode(),
        query_string=b"",
        root_path="",
        headers=[(b"host", b"testserver"), (b"accept", b"text/event-stream"), (b"cookie", b"x=" + b"y" * 500)],
        client=("127.0.0.1", 50000),
        server=("testserver", 80),
        url_route={"args": (), "kwargs": {"video_id": str(video_id)}},
    )


class Request:
    """One request as a server drives it: the request, then nothing until the client goes."""

    def __init__(self):
        self.sent: list[dict] = []
        self.live = asyncio.Event()
        self.gone = asyncio.Event()
        self.asked = False

    async def receive(self):
        if not self.asked:
            self.asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message):
        self.sent.append(message)
        if b"retry:" in message.get("body", b""):
            self.live.set()


async def open_stream(video_id: int, scope=None, context=None) -> tuple[Request, asyncio.Task]:
    request = Request()
    app = SSEEndpoint.as_asgi()
    coro = app(scope if scope is not None else scope_for(video_id), request.receive, request.send)
    task = asyncio.get_running_loop().create_task(coro, context=context)
    await asyncio.wait_for(request.live.wait(), 10)
    return request, task


async def close_all(opened) -> None:
    for request, _ in opened:
        request.gone.set()
    await asyncio.wait_for(asyncio.gather(*(task for _, task in opened)), 10)
    await get_hub().stop()


async def test_it_keeps_no_reference_to_the_request_scope_once_live(video):
    scope = scope_for(video.pk)
    scope_ref = weakref.ref(scope)
    opened = [await open_stream(video.pk, scope)]
    assert opened[0][0].sent[0]["status"] == 200
    del scope
    gc.collect()
    assert scope_ref() is None
    hub = get_hub()
    assert sum(len(sub.connections) for sub in hub.videos.values()) == 1
    await close_all(opened)
    assert not hub.videos  # the disconnect still unsubscribed it


async def test_it_runs_no_task_of_its_own_per_open_stream(video):
    opened = [await open_stream(video.pk)]  # the first one starts the hub and its tasks
    before = len(asyncio.all_tasks())
    opened += [await open_stream(video.pk) for _ in range(10)]
    # One task per request is the server's (made here by open_stream); the
    # stream adds none: no receive task, no asyncio.wait, no channel.
    assert len(asyncio.all_tasks()) - before == 10
    await close_all(opened)


async def test_it_leaves_nothing_of_its_open_in_the_stream_task_context(video):
    """The open runs database and Redis work in worker threads; asgiref copies
    the context variables they set (Django's connection storage) back into
    the awaiting task. The stream's own task, which lives as long as the
    client stays, keeps none of them."""
    context = contextvars.copy_context()
    before = set(context)
    opened = [await open_stream(video.pk, context=context)]
    assert set(context) == before
    await close_all(opened)
