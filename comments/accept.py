"""accept(): the edge of the write path, written once for every way a comment
is posted -- the REST view, the fast path in front of Django, the WebSocket.

It takes posts that are already authenticated and parsed (never a request),
applies the posting throttles, writes them with `services.post_comments`,
counts the metrics and gives each its answer (status, body, headers), so the
three entry points answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import DatabaseError

from comments import services
from comments.events import comment_json
from livecomment.lib import metrics
from livecomment.lib.errors import ServiceError, Unavailable, error_body
from livecomment.lib.throttling import api_post_throttles, check_post_throttles
from videos.lookups import video_not_found
from videos.models import Video

Via = Literal["rest", "fastpath", "ws"]

# The metrics label of each entry point: the fast path is the REST API's POST.
_LABEL = {"rest": "api", "fastpath": "api", "ws": "ws"}


@dataclass(frozen=True, slots=True)
class Post:
    """One comment to post: its (already authenticated) author and the fields it sent."""

    author: Any
    text: object  # any JSON value; services.clean_text says what is wrong with it
    idempotency_key: object = None
    client: dict = field(default_factory=dict)  # REMOTE_ADDR / HTTP_X_FORWARDED_FOR, for the per-IP throttle


@dataclass(frozen=True, slots=True)
class Answer:
    """What the client is told: an HTTP answer, or an ack / error frame on a WebSocket."""

    status: int
    body: dict
    headers: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status < 400


def accept(video: Video | int, posts: list[Post], via: Via) -> list[Answer]:
    """Throttle, write and answer `posts` to `video` (an int: the id of a video
    that does not exist, answered 404 once the throttles have counted).

    `via` names the entry point for metrics; the throttles are the REST API's
    posting limits on the same counters whichever way a post comes:
    * "rest": DRF's view has already applied them, before it read the body
      (its throttle_classes), so a throttled request is refused before its
      body is judged;
    * "fastpath": DRF's rules, every throttle counting, in one round trip;
    * "ws": signed-in posts only, the first refusing throttle answers.
    An exception of the stores propagates; `server_error()` is its answer.
    """
    return _accept(video, posts, via, None)


def accept_looked_up(video: Video | int, posts: list[Post], banned: list) -> list[Answer]:
    """The fast path's accept(): its one-statement lookup already found which
    authors have an active ban in the video (`banned`; the rest have none)."""
    return _accept(video, posts, "fastpath", banned)


def _accept(video: Video | int, posts: list[Post], via: Via, banned: list | None) -> list[Answer]:
    label = _LABEL[via]
    answers: list[Answer | None] = [None] * len(posts)
    refusals = _throttle(posts, via)
    drafts: list[tuple[int, services.Draft]] = []
    for index, (post, refusal) in enumerate(zip(posts, refusals, strict=True)):
        if refusal is not None:
            answers[index] = _answer(refusal, label)
        else:
            drafts.append((index, services.Draft(post.author, post.text, post.idempotency_key)))
    if drafts:
        outcomes = _write(video, [draft for _, draft in drafts], banned)
        for (index, _), outcome in zip(drafts, outcomes, strict=True):
            answers[index] = _answer(outcome, label)
    return [answer for answer in answers if answer is not None]


def server_error(via: Via) -> Answer:
    """The answer to a post whose write raised (a bug, logged where it was caught)."""
    metrics.comment_rejected("server_error", _LABEL[via])
    return Answer(500, error_body("server_error", "Internal error; it has been logged."))


def refused(error: ServiceError, via: Via) -> Answer:
    """The answer to a post refused before accept() saw it (the fast path's lookup failing)."""
    return _answer(error, _LABEL[via])


def _throttle(posts: list[Post], via: Via) -> list[ServiceError | None]:
    if via == "fastpath":
        return api_post_throttles([(post.author, post.client) for post in posts])
    refusals: list[ServiceError | None] = []
    for post in posts:
        refusal = None
        if via == "ws" and post.author.is_authenticated:
            try:
                check_post_throttles(post.author, post.client)
            except ServiceError as exc:
                refusal = exc
        refusals.append(refusal)
    return refusals


def _write(video: Video | int, drafts: list[services.Draft], banned: list | None) -> list[services.Outcome]:
    if isinstance(video, int):
        return [video_not_found(video) for _ in drafts]
    bans = None
    if banned is not None:
        try:
            # The lookup only said who has a ban; which one (and its end) for those few.
            bans = services.active_bans(video, banned) if banned else {}
        except DatabaseError:
            return [Unavailable("database") for _ in drafts]
    return services.post_comments(video, drafts, bans=bans)


def _answer(outcome: services.Outcome, label: str) -> Answer:
    if isinstance(outcome, ServiceError):
        metrics.comment_rejected(outcome.code, label)
        return Answer(outcome.status, outcome.as_dict(), outcome.headers)
    metrics.comment_accepted(label, created=outcome.created)
    return Answer(201 if outcome.created else 200, comment_json(outcome.comment))
