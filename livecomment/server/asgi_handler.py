"""Django's ASGI handler without the per-request thread where none is needed.

Django's `ASGIHandler.handle` sends `request_started` and closes the response
(which sends `request_finished`) through `sync_to_async(thread_sensitive=True)`
inside a per-request `ThreadSensitiveContext`: every request starts a thread
for these two calls and another to join it, even when the view is async and
everything else runs in the event loop (livecomment/server/async_middleware.py) or in
the API's own thread pool (comments/longpoll.py). The stock receivers of those
signals only reset and close *this thread's* database connections and caches
(and the urlconf override),
so when the request ran no thread-sensitive code -- no per-request thread
exists, so it cannot own a connection -- they can run inline: there is nothing
for them to close in the event loop's thread.

When any other receiver is connected, or the request did use the per-request
thread (a sync view such as the admin), this is exactly Django's handler --
except that the database connections of that thread are closed when the
request ends: the thread ends with it, so a persistent one (CONN_MAX_AGE)
could never be used again and stayed open until a garbage collection.
It also loads the stock middlewares in versions that run their hooks in the
event loop (livecomment/server/async_middleware.py).
`handle` follows Django 5.2's; the differences are marked.
"""

from __future__ import annotations

import asyncio
import weakref

import django
from asgiref.sync import AsyncToSync, SyncToAsync, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler as _DjangoASGIHandler
from django.core.handlers.asgi import get_script_prefix
from django.core.handlers.base import reset_urlconf
from django.db import close_old_connections, connections, reset_queries
from django.urls import set_script_prefix

from livecomment.server.async_middleware import INLINE_VERSIONS

_STOCK_RECEIVERS = {
    signals.request_started: {reset_queries, close_old_connections},
    signals.request_finished: {close_old_connections, close_caches, reset_urlconf},
}


def _only_stock_receivers(signal) -> bool:
    receivers = {ref() if isinstance(ref, weakref.ReferenceType) else ref for _, ref, *_ in signal.receivers}
    return receivers <= _STOCK_RECEIVERS[signal]


def _ran_thread_sensitive_code() -> bool:
    context = SyncToAsync.thread_sensitive_context.get(None)
    return context is None or context in SyncToAsync.context_to_thread_executor


def _has_own_request_thread() -> bool:
    """Did thread-sensitive code run in a thread started for this request only
    (the ThreadSensitiveContext's executor, shut down when the request ends)?"""
    context = SyncToAsync.thread_sensitive_context.get(None)
    return (
        context is not None
        and context in SyncToAsync.context_to_thread_executor
        and getattr(AsyncToSync.executors, "current", None) is None  # else that code ran in the caller's thread
    )


def _closing_connections(close):
    # Stock Django leaves this to request_finished, which keeps a connection
    # open for CONN_MAX_AGE -- but in a thread that is thrown away after the
    # request nothing can reuse or close it, and it stays open until a garbage
    # collection: one more database session per request to a sync view.
    def close_then_disconnect():
        try:
            close()
        finally:
            connections.close_all()

    return close_then_disconnect


class ASGIHandler(_DjangoASGIHandler):
    def load_middleware(self, is_async=False):
        # The stock middlewares named in settings, in their inline versions.
        # Swapped for the duration of loading only (at start-up, one thread).
        configured = settings.MIDDLEWARE
        settings.MIDDLEWARE = [INLINE_VERSIONS.get(path, path) for path in configured]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = configured

    async def _request_started(self, scope) -> None:
        if _only_stock_receivers(signals.request_started) and not _ran_thread_sensitive_code():
            signals.request_started.send(sender=self.__class__, scope=scope)
        else:
            await signals.request_started.asend(sender=self.__class__, scope=scope)

    async def _close(self, response) -> None:
        if _only_stock_receivers(signals.request_finished) and not _ran_thread_sensitive_code():
            response.close()
        elif _has_own_request_thread():
            await sync_to_async(_closing_connections(response.close))()
        else:
            await sync_to_async(response.close)()

    async def _finish_cancelled(self) -> None:
        await signals.request_finished.asend(sender=self.__class__)
        if _has_own_request_thread():
            await sync_to_async(connections.close_all)()

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await self._request_started(scope)  # changed
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            await self._close(error_response)  # changed
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass
            return response

        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await self._finish_cancelled()  # changed
        else:
            await self._close(response)  # changed

        body_file.close()


def get_asgi_application() -> ASGIHandler:
    django.setup(set_prefix=False)
    return ASGIHandler()
