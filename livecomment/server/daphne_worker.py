"""Daphne, as `manage.py serve --server daphne` runs it, with a lighter `receive` queue.

    python -m livecomment.server.daphne_worker --fd <fd> livecomment.asgi:application

Daphne's own command line (every option of `daphne`), whose server makes the
per-request queue behind `receive` a `MessageQueue` instead of an
`asyncio.Queue`. An idle SSE stream holds one for as long as it is open, and
an `asyncio.Queue` is four deques (its items, getters, putters and the
`join()` event's waiters): about 3 KB of empty deque blocks per connection,
most of what Daphne kept per idle stream beyond uvicorn (docs/BENCHMARKS.md,
"Where the targets stand"). Daphne only ever calls `put_nowait()` on it, and
the application awaits `get()`.
"""

from __future__ import annotations

import asyncio
from functools import partial

from daphne.cli import CommandLineInterface
from daphne.server import Server


class MessageQueue:
    """An unbounded FIFO with `put_nowait()` and `async get()`, holding no
    container until it holds something. Always truthy (Daphne tests the
    queue's presence with `if protocol.application_queue:`)."""

    __slots__ = ("_items", "_getters")

    def __init__(self):
        self._items: list | None = None
        self._getters: list[asyncio.Future] | None = None

    def put_nowait(self, item) -> None:
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(item)
                return
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)

    async def get(self):
        if self._items:
            item = self._items.pop(0)
            if not self._items:
                self._items = None
            return item
        getter = asyncio.get_running_loop().create_future()
        if self._getters is None:
            self._getters = [getter]
        else:
            self._getters.append(getter)
        try:
            return await getter
        finally:
            if self._getters is not None and getter in self._getters:
                self._getters.remove(getter)
            if not self._getters:
                self._getters = None

    def empty(self) -> bool:
        return not self._items


class LightQueueServer(Server):
    def create_application(self, protocol, scope):
        # Daphne's create_application, with MessageQueue for asyncio.Queue.
        assert "application_instance" not in self.connections[protocol]
        input_queue = MessageQueue()
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope,
            receive=input_queue.get,
            send=partial(self.handle_reply, protocol),
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance,
            loop=asyncio.get_event_loop(),
        )
        return input_queue


class LightQueueCommandLine(CommandLineInterface):
    server_class = LightQueueServer


if __name__ == "__main__":
    LightQueueCommandLine.entrypoint()
