"""Invariant 4: joining is race-free.

A new stream registers with the hub *before* it reads its backlog, keeps the
live frames that arrive meanwhile, and drops those its backlog already held.
These tests force a comment into each window of the join -- after the
registration and before the backlog is read, and after the backlog is read
and before the stream goes live -- by running the real SSE endpoint in
process (real channel layer, real Redis stream, real database) with the
backlog read wrapped so the test acts at the exact moment.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import ApplicationCommunicator

from comments import services
from dispatcher import streams
from dispatcher.hub import current_hub
from tests.base import alice, video


def _application():
    from livecomment.routing import build_application
    from livecomment.server.asgi_handler import get_asgi_application

    return build_application(get_asgi_application())


def _scope(video_id: int) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/api/v1/videos/{video_id}/stream",
        "raw_path": f"/api/v1/videos/{video_id}/stream".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


def _comment_ids(body: bytes) -> list[int]:
    ids = []
    for block in body.decode().split("\n\n"):
        lines = block.split("\n")
        if "event: comment" in lines:
            data = next(line[len("data: ") :] for line in lines if line.startswith("data: "))
            ids.append(json.loads(data)["id"])
    return ids


async def _post_and_wait_for_the_hub(video, author, text: str):
    """Post through the write path and return once this process's hub holds the event."""
    hub = current_hub()
    before = hub.stats["messages_received"]
    comment = (await sync_to_async(services.post_comment, thread_sensitive=False)(video, author, text)).comment
    for _ in range(500):
        if hub.stats["messages_received"] > before:
            return comment
        await asyncio.sleep(0.01)
    raise AssertionError(f"the hub never received the published comment: {dict(hub.stats)}")


async def _join_with(video, author, monkeypatch, window: str):
    """Open a stream while a comment is posted in `window`; return (body, posted)."""
    original = streams.read_backlog
    posted = []

    async def read_backlog(request):
        hub = current_hub()
        # Registered first: the connection is the hub's before any backlog is read.
        assert len(hub.videos[video.pk].connections) == 1
        if window == "before the backlog":
            posted.append(await _post_and_wait_for_the_hub(video, author, "in the window before the backlog"))
        backlog = await original(request)
        if window == "after the backlog":
            posted.append(await _post_and_wait_for_the_hub(video, author, "in the window after the backlog"))
        return backlog

    monkeypatch.setattr(streams, "read_backlog", read_backlog)
    app = _application()
    stream = ApplicationCommunicator(app, _scope(video.pk))
    await stream.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await stream.receive_output(10)
    assert start["status"] == 200, start
    body = b""
    # (A receive_output timeout would cancel the application: read until what
    # is expected is there. Frames come in order, so a duplicate of the
    # comment posted while joining would arrive before the later live one.)
    while posted[0].text.encode() not in body:
        body += (await stream.receive_output(5)).get("body", b"")
    after = await _post_and_wait_for_the_hub(video, author, "live after the join")
    try:
        while b"live after the join" not in body:
            body += (await stream.receive_output(5)).get("body", b"")
    finally:
        await stream.send_input({"type": "http.disconnect"})
        await stream.wait(5)
        await current_hub().stop()
    return body, posted, after


@pytest.mark.parametrize("window", ["before the backlog", "after the backlog"])
def test_it_delivers_a_comment_posted_while_joining_exactly_once_in_order(
    transactional_db, video, alice, monkeypatch, window
):
    earlier = services.post_comment(video, alice, "before anyone watched").comment
    body, posted, after = asyncio.run(_join_with(video, alice, monkeypatch, window))
    assert len(posted) == 1
    # The backlog held `earlier` (and, in the first window, the new comment);
    # the live frame of a comment the backlog held was dropped, one it did not
    # hold was kept while the backlog was written and sent after it.
    assert _comment_ids(body) == [earlier.pk, posted[0].pk, after.pk]
