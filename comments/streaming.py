"""The comments app's part of the live streams, registered with the dispatcher at startup."""

from __future__ import annotations

from django.db import DatabaseError

from comments import services
from comments.accept import Answer, Post, accept
from livecomment.lib.errors import Unavailable


def post_from_socket(video, user, text, idempotency_key, meta: dict) -> Answer:
    """A comment posted over the WebSocket: the same accept() as the REST API and the fast path."""
    try:
        (answer,) = accept(video, [Post(user, text, idempotency_key, meta)], "ws")
    except DatabaseError as exc:
        raise Unavailable("database") from exc
    return answer


def may_see_held(user, video) -> bool:
    """A moderator's stream carries held comments too."""
    return services.can_moderate(user, video)
