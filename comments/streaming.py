"""The comments app's part of the live streams, registered with the dispatcher at startup."""

from __future__ import annotations

from django.db import DatabaseError

from comments import services
from comments.accept import Answer, Post, accept
from livecomment.lib.errors import ServiceError, Unavailable
from videos.lookups import get_video
from videos.models import Video


def post_from_socket(video, user, text, idempotency_key, meta: dict) -> Answer:
    """A comment posted over the WebSocket: the same accept() as the REST API and the fast path.

    The video is read again for each post, as a REST request reads it: the
    socket's copy is from its connect, before the video may have ended or
    closed its comments or changed slow mode."""
    try:
        current: Video | int = get_video(video.pk)
    except ServiceError as exc:
        if exc.status != 404:
            raise
        current = video.pk  # deleted since: accept() answers 404
    try:
        (answer,) = accept(current, [Post(user, text, idempotency_key, meta)], "ws")
    except DatabaseError as exc:
        raise Unavailable("database") from exc
    return answer


def may_see_held(user, video) -> bool:
    """A moderator's stream carries held comments too."""
    return services.can_moderate(user, video)
