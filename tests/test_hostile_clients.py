"""Clients that misbehave on purpose, against real gateways: what they hold
must be given back however they leave, and what they send must not reach
further than their role.
"""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from rest_framework.authtoken.models import Token

from tests.base import alice, video
from videos.models import Video

__all__ = ["alice", "video"]


def cut(sock: socket.socket) -> None:
    """Leave at once: a reset, no orderly close (a phone losing its network)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def start_poll(gateway, path: str, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n\r\n".encode())
    return sock


@pytest.mark.processes
def test_it_gives_a_long_polls_slot_back_when_the_client_leaves_while_it_joins(gateways, alice):
    """A long-poll cut off while its gateway joins the video's group (the first
    waiter of a video: a channel-layer round trip, and a database look when the
    stream is empty) must give its per-user slot back, or a few cut polls lock
    the account out of long-polling on that gateway for good."""
    gateway = gateways.start("uvicorn", MAX_LONG_POLLS_PER_USER="2")
    token = Token.objects.create(user=alice).key
    # No comments, so no stream: every poll is the video's first waiter.
    quiet = Video.objects.create(title="Nobody posts", state=Video.State.LIVE)
    path = f"/api/v1/videos/{quiet.pk}/comments/?after=9999999999999-0&wait=20"
    client = httpx.Client(base_url=gateway.base, headers={"Authorization": f"Token {token}"}, timeout=30)

    def refused() -> bool:
        r = client.get(path.replace("wait=20", "wait=1"))
        assert r.status_code in (200, 429), (r.status_code, r.text[:200])
        return r.status_code == 429

    # Cut polls at every moment of their first few tens of milliseconds.
    for attempt in range(120):
        cut_after = (attempt % 40) / 1000
        sock = start_poll(gateway, path, token)
        time.sleep(cut_after)
        cut(sock)
        if attempt % 40 == 39:
            time.sleep(0.3)  # let the gateway see the last cut
            assert not refused(), f"slots leaked after {attempt + 1} cut long-polls"
    client.close()


# -- WebSocket handshakes whose header names are not lower case ----------------------------------


async def handshake(headers: list[tuple[bytes, bytes]]) -> bool:
    from channels.testing import WebsocketCommunicator
    from django.core.asgi import get_asgi_application

    from livecomment.routing import build_application

    communicator = WebsocketCommunicator(
        build_application(get_asgi_application()), "/ws/videos/999999/", headers=[(b"host", b"localhost"), *headers]
    )
    connected, _ = await communicator.connect(timeout=10)
    await communicator.disconnect()
    return connected


@pytest.mark.parametrize("name", [b"Origin", b"ORIGIN"])
def test_it_refuses_a_foreign_origin_whatever_the_case_of_its_header_name(transactional_db, name):
    """The stream's sign-in (dispatcher/auth.py) reads header names in any case
    and rides the session cookie when an Origin is there; the handshake's
    Origin check must see that same header, or a server that hands names on
    as sent would let a foreign page in with the viewer's cookies."""
    assert asyncio.run(handshake([(name, b"http://evil.example")])) is False
    assert asyncio.run(handshake([(name, b"http://localhost")])) is True


# -- a join cut short ---------------------------------------------------------------------------


async def test_it_lets_a_connection_join_when_the_one_joining_before_it_leaves(video):
    """The first connection of a video joins its group for everyone; when that
    one is cancelled midway (a long-poll whose client left), a connection
    that arrived meanwhile must still get in, not be failed as if it had been
    cancelled itself (an SSE viewer's open then fails, a WebSocket closes)."""
    from dispatcher.connections import Waiter
    from dispatcher.hub import get_hub

    hub = get_hub()
    await hub.ensure_started()
    first, second = Waiter(video.pk), Waiter(video.pk)
    joining = asyncio.ensure_future(hub.subscribe(video.pk, first))
    await asyncio.sleep(0)  # now in the group join: a round trip to Redis
    assert not hub.videos[video.pk].joined.done()
    following = asyncio.ensure_future(hub.subscribe(video.pk, second))
    await asyncio.sleep(0)
    joining.cancel()
    try:
        sub = await asyncio.wait_for(following, 10)
        assert second in sub.connections and hub.videos[video.pk] is sub
    finally:
        hub.unsubscribe(first)
        hub.unsubscribe(second)
        await hub.stop()


async def test_it_leaves_the_group_when_the_only_joiner_is_cancelled_midway(video):
    """A caller cancelled during the join never holds a subscription, so it
    cannot unsubscribe: the hub must forget its connection itself, or the
    video stays subscribed (and counted as watched) forever."""
    from dispatcher.connections import Waiter
    from dispatcher.hub import get_hub

    hub = get_hub()
    await hub.ensure_started()
    try:
        joining = asyncio.ensure_future(hub.subscribe(video.pk, Waiter(video.pk)))
        await asyncio.sleep(0)  # now in the group join
        sub = hub.videos[video.pk]
        joining.cancel()
        with pytest.raises(asyncio.CancelledError):
            await joining
        assert sub.join_task is not None
        await asyncio.wait_for(asyncio.shield(sub.join_task), 10)
        for _ in range(100):  # the group is left by a task of its own
            if hub.stats["groups_left"]:
                break
            await asyncio.sleep(0.01)
        assert not sub.connections
        assert video.pk not in hub.videos
        assert hub.stats["groups_left"] == 1
    finally:
        await hub.stop()
