"""The payloads of real-time events, as documented in docs/realtime.md.

Each event goes out as SSE (`id:`, `event:`, `data:`) or as a WebSocket frame
{"event", "id", "data"}. The "cursor" of a comment is its stream position; it
is added when the event is read from or appended to the stream, so the data
built here never carries it; `event()` adds it to what goes to viewers, and
`announce()` is the one way the write path hands events to the dispatcher.

`EVENT_TYPES` is the list of every event the product emits, with the type of
the `data` viewers receive (the TypedDicts below): the AsyncAPI document
(livecomment/asyncapi.py, served at /api/asyncapi.json) is generated from it,
and `event()` refuses a type it does not list. Event names are a public
contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, NamedTuple, TypedDict

from django.db import transaction

from dispatcher import Event, publish

VideoState = Literal[
    "scheduled", "live", "ended"
]  # videos.models.Video.State (tests/test_asyncapi.py keeps them equal)


class Author(TypedDict):
    id: int
    name: str


Role = Literal["host", "moderator", "staff"]  # comments.services.rules.ROLES (tests/test_role_badges.py)


class CommentAuthor(Author):
    """The author of a comment, with their roles in the video when they posted it."""

    roles: list[Role]  # host: the video's owner or a designated host; moderator: of the video; staff: of the site


class Positioned(TypedDict):
    cursor: str  # the stream position of the comment (or, for video events, of the event)


class CommentBody(TypedDict):
    id: int
    video: int
    author: CommentAuthor
    text: str
    created: str  # ISO 8601, UTC, milliseconds: "2026-11-24T22:00:00.000Z"
    global_id: str  # "<origin region>:<id there>", the same in every region
    # Milliseconds from the video's started_at to the comment's creation in its origin
    # region (negative before the start); null when the video had no started_at then.
    offset_ms: int | None


class CommentData(CommentBody, Positioned):
    """`comment` and `comment.held`: a comment as viewers receive it."""


CommentStatus = Literal["visible", "held", "removed"]  # comments.models.Comment.Status (tests/test_asyncapi.py)


class CommentJson(CommentData):
    """A comment as the REST API, the console and a WebSocket post's `ack` show it (`comment_json()`)."""

    status: CommentStatus


class RemovedBody(TypedDict):
    id: int


class CommentRemovedData(RemovedBody, Positioned):
    """`comment.removed`: the removed comment's id and its own cursor."""


class ReportBody(TypedDict):
    id: int
    comment: int
    comment_cursor: str
    reporter: Author
    reason: str


class ReportCreatedData(ReportBody, Positioned):
    """`report.created` (moderators only): a viewer reported a comment."""


class VideoStateBody(TypedDict):
    state: VideoState


class VideoStateData(VideoStateBody, Positioned):
    """`video.state`: the video is now scheduled, live or ended."""


class VideoSettingsBody(TypedDict):
    slow_mode_seconds: int
    comments_enabled: bool


class VideoSettingsData(VideoSettingsBody, Positioned):
    """`video.settings`: slow mode or posting changed."""


class PinBody(TypedDict):
    comment: CommentData | None  # the pinned comment; null for an announcement
    text: str | None  # the announcement; null when a comment is pinned
    by: Author  # the moderator who pinned it
    expires: str | None  # ISO 8601, UTC: hide the pin from then on; null: until unpinned


class PinData(PinBody, Positioned):
    """`pin`: the video's pin now; `cursor` (its stream position) names it, e.g. to dismiss it."""


class PinClearedData(Positioned):
    """`pin.cleared`: the video has no pin any more (unpinned, or its comment removed)."""


class ViewersData(TypedDict):
    """`viewers`: how many watch the video now (not in the stream: no id)."""

    count: int


EVERYONE, MODERATORS = "", "mod"  # the audience of an event, as in dispatcher.Event (hotstore.MOD_AUDIENCE)


class EventType(NamedTuple):
    payload: type  # the TypedDict of the `data` clients receive
    audiences: tuple[str, ...]  # who receives it
    in_stream: bool  # has an `id` (a stream position), is resumed from; else live only
    summary: str
    # Also sent without an id: as a stream's first event, the current state (the pin).
    also_without_id: bool = False


EVENT_TYPES: dict[str, EventType] = {
    "comment": EventType(
        CommentData,
        (EVERYONE,),
        True,
        "A visible comment: posted, or restored / approved (then `cursor` is its original position; "
        "place it there, deduplicate by `id`).",
    ),
    "comment.held": EventType(
        CommentData, (MODERATORS,), True, "A comment held for review (moderators of the video only)."
    ),
    "comment.removed": EventType(
        CommentRemovedData,
        (EVERYONE, MODERATORS),
        True,
        "A comment was removed: drop it by `id`. Moderators only when the comment was held (viewers never saw it).",
    ),
    "report.created": EventType(
        ReportCreatedData, (MODERATORS,), True, "A viewer reported a comment (moderators of the video only)."
    ),
    "video.state": EventType(VideoStateData, (EVERYONE,), True, "The video's state changed."),
    "video.settings": EventType(VideoSettingsData, (EVERYONE,), True, "Slow mode or comments enabled changed."),
    "pin": EventType(
        PinData,
        (EVERYONE,),
        True,
        "A moderator pinned a comment or an announcement; it replaces any earlier pin. A stream open "
        "sends the current pin first, without an `id` (see docs/realtime.md).",
        also_without_id=True,
    ),
    "pin.cleared": EventType(
        PinClearedData, (EVERYONE,), True, "The pin was taken down (unpinned, or its comment removed)."
    ),
    "viewers": EventType(ViewersData, (EVERYONE,), False, "The number of viewers, every few seconds while it changes."),
}


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def comment_data(comment) -> CommentBody:
    return {
        "id": comment.pk,
        "video": comment.video_id,
        "author": {
            "id": comment.author_id,
            "name": comment.author.get_username(),
            "roles": comment.author_roles.split(),  # stored as Role names, in their order
        },
        "text": comment.text,
        "created": timestamp(comment.created),
        "global_id": comment.global_id,
        "offset_ms": comment.offset_ms,
    }


def removed_data(comment) -> RemovedBody:
    return {"id": comment.pk}


def report_data(report) -> ReportBody:
    comment, reporter = report.comment, report.reporter
    return {
        "id": report.pk,
        "comment": comment.pk,
        "comment_cursor": comment.cursor,
        "reporter": {"id": reporter.pk, "name": reporter.get_username()},
        "reason": report.reason,
    }


def video_state_data(video) -> VideoStateBody:
    return {"state": video.state}


def video_settings_data(video) -> VideoSettingsBody:
    return {"slow_mode_seconds": video.slow_mode_seconds, "comments_enabled": video.comments_enabled}


def pin_data(comment, text: str | None, by, expires_at) -> PinBody:
    return {
        "comment": dict(comment_data(comment), cursor=comment.cursor) if comment is not None else None,  # type: ignore[typeddict-item]
        "text": text,
        "by": {"id": by.pk, "name": by.get_username()},
        "expires": timestamp(expires_at) if expires_at is not None else None,
    }


def comment_json(comment) -> dict:
    """A comment as the REST API and the console show it: its event data with cursor and status (`CommentJson`)."""
    data = dict(comment_data(comment))
    data["cursor"] = comment.cursor
    data["status"] = comment.status
    return data


def event(
    kind: str, positions: tuple[str, str], data: Mapping[str, object], audience: str = "", of_comment=None
) -> Event:
    """An event appended at `positions` (previous ID, its ID), as viewers get it:
    `data` with its cursor -- its own ID, or the comment's own cursor when it
    re-announces an older comment (`of_comment`: a removal, a restore) -- for
    `audience` ("" everyone, "mod" moderators)."""
    if kind not in EVENT_TYPES or not EVENT_TYPES[kind].in_stream:
        raise ValueError(f"{kind!r} is not an event type of the stream (comments.events.EVENT_TYPES)")
    prev, new = positions
    cursor = new if of_comment is None else of_comment.cursor
    return {"type": kind, "id": new, "prev": prev, "data": dict(data, cursor=cursor), "audience": audience}


def announce(video_id: int, *events: Event) -> None:
    """Publish `events` (in stream order) once the database has what they
    announce: at the commit of the surrounding transaction, at once outside one."""
    if events:
        transaction.on_commit(lambda: publish(video_id, *events))
