"""What the apps above lend the dispatcher at startup (CommentsConfig.ready()).

The dispatcher delivers events and takes WebSocket posts, but what a post
does and who may see held comments are the comments app's rules; it
registers them here so that the dispatcher never imports the app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# (video, user, text, idempotency_key, request meta) -> an answer with .ok and .body (the comment's JSON
# or the error object); raises ServiceError for a refusal before the write.
PostHandler = Callable[[Any, Any, Any, Any, dict], Any]
# (user, video) -> may this viewer see held comments (a moderator's stream)?
StreamAccess = Callable[[Any, Any], bool]

_post_handler: PostHandler | None = None
_stream_access: StreamAccess | None = None


def register_post_handler(handler: PostHandler) -> None:
    global _post_handler
    _post_handler = handler


def register_stream_access(check: StreamAccess) -> None:
    global _stream_access
    _stream_access = check


def post_handler() -> PostHandler:
    if _post_handler is None:
        raise RuntimeError("no WebSocket post handler registered (is the comments app installed?)")
    return _post_handler


def may_see_held(user, video) -> bool:
    if _stream_access is None:
        raise RuntimeError("no stream access check registered (is the comments app installed?)")
    return _stream_access(user, video)
