"""The comments app's part of the live streams, registered with the dispatcher at startup."""

from __future__ import annotations

from django.db import DatabaseError

from comments import services
from comments.api import comment_json
from livecomment import metrics
from livecomment.errors import Unavailable
from livecomment.throttling import check_post_throttles


def post_from_socket(video, user, text, idempotency_key, meta: dict) -> dict:
    """A comment posted over the WebSocket: the REST API's limits and write path; returns its JSON."""
    if user.is_authenticated:  # the REST API's posting limits, same counters
        check_post_throttles(user, meta)
    try:
        result = services.post_comment(video, user, text, idempotency_key)
    except DatabaseError as exc:
        raise Unavailable("database") from exc
    metrics.comment_accepted("ws", created=result.created)
    return comment_json(result.comment)


def may_see_held(user, video) -> bool:
    """A moderator's stream carries held comments too."""
    return services.can_moderate(user, video)
