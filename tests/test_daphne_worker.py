"""Daphne as `manage.py serve` runs it (livecomment/server/daphne_worker.py): its
per-request `receive` queue. Every Daphne gateway of the other tests
(tests/servers.py) runs through it too: streams, WebSockets, Django requests,
disconnects."""

from __future__ import annotations

import asyncio
import sys
import tracemalloc

import pytest

from livecomment.server.daphne_worker import LightQueueServer, MessageQueue


def run(coro):
    return asyncio.run(coro)


def test_it_hands_over_messages_in_order_whether_put_before_or_after_get():
    async def scenario():
        queue = MessageQueue()
        queue.put_nowait(1)
        queue.put_nowait(2)
        first, second = await queue.get(), await queue.get()
        waiting = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        queue.put_nowait(3)
        queue.put_nowait(4)
        return first, second, await waiting, await queue.get(), queue.empty()

    assert run(scenario()) == (1, 2, 3, 4, True)


def test_a_cancelled_get_does_not_swallow_the_next_message():
    async def scenario():
        queue = MessageQueue()
        waiting = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        queue.put_nowait("disconnect")
        return await asyncio.wait_for(queue.get(), 1)

    assert run(scenario()) == "disconnect"


def test_two_waiting_gets_each_get_one_message():
    async def scenario():
        queue = MessageQueue()
        a, b = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())
        await asyncio.sleep(0)
        queue.put_nowait("x")
        queue.put_nowait("y")
        return sorted(await asyncio.gather(a, b))

    assert run(scenario()) == ["x", "y"]


def test_it_is_truthy_even_when_empty():
    # Daphne asks `if protocol.application_queue:` to know the application exists.
    assert MessageQueue()


def test_an_idle_queue_holds_a_fraction_of_an_asyncio_queue():
    def held(make) -> int:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        queues = [make() for _ in range(1000)]
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(queues) == 1000
        return (after - before) // 1000

    async def sizes():
        return held(asyncio.Queue), held(MessageQueue)

    standard, light = run(sizes())
    assert light * 8 < standard, (standard, light)


def test_the_server_makes_a_message_queue_for_each_request():
    class Protocol:
        pass

    async def scenario():
        got = {}

        async def app(scope, receive, send):
            got["message"] = await receive()

        server = LightQueueServer.__new__(LightQueueServer)
        server.application = app
        protocol = Protocol()
        server.connections = {protocol: {}}
        queue = server.create_application(protocol, {"type": "http"})
        queue.put_nowait({"type": "http.request"})
        await server.connections[protocol]["application_instance"]
        return queue, got["message"]

    queue, message = run(scenario())
    assert isinstance(queue, MessageQueue) and message == {"type": "http.request"}
    assert sys.modules["daphne.server"]  # the real Daphne, subclassed
