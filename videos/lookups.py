"""Finding a video by the id a request names."""

from __future__ import annotations

from django.db import DatabaseError

from livecomment.lib.errors import ServiceError, Unavailable
from videos.models import Video

# Asked on every request about a video (every comment POST): the statement
# written once, since building `Video.objects.get(pk=...)` with the ORM cost
# more CPU than running it.
_VIDEO_SQL = f"SELECT * FROM {Video._meta.db_table} WHERE {Video._meta.pk.column} = %s"


def video_not_found(video_id: int) -> ServiceError:
    return ServiceError("not_found", f"No video {video_id}.", 404)


def get_video(video_id: int) -> Video:
    """The video, or a 404 ServiceError; 503 when the database is away."""
    if not 0 < video_id < 2**63:  # no such row (and no database takes the number)
        raise video_not_found(video_id)
    try:
        found = list(Video.objects.raw(_VIDEO_SQL, [video_id]))
    except DatabaseError as exc:
        raise Unavailable("database") from exc
    if not found:
        raise video_not_found(video_id)
    return found[0]
