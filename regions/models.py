from django.conf import settings
from django.db import models


class IngestPosition(models.Model):
    """How far this region has applied another region's events.

    One row per origin stream ("<region>/<host index>": a region has one
    region stream per Redis host): the position (as the sortable integer of
    comments/cursors.py) of the last event of that stream applied here. It moves in the same database transaction as the change it
    records, so each origin event is applied exactly once, however often the
    relay delivers it (ARCHITECTURE.md, "Several regions").
    """

    origin = models.CharField(max_length=32, unique=True)
    position = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        from comments import cursors

        return f"{self.origin} at {cursors.from_position(self.position)}"


class RemoteUser(models.Model):
    """A user of another region, as this region knows them.

    Regions identify a person by where their account lives and its id there
    (origin_region, origin_user_id), never by username: names are per region,
    and anyone can sign up with any free one. `user` is the placeholder
    account that stands for them here: it cannot sign in, and its name
    ("<name>:<region>") is one sign-up cannot create (regions/identity.py).
    """

    origin_region = models.CharField(max_length=32)
    origin_user_id = models.BigIntegerField()
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="remote_identity")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["origin_region", "origin_user_id"], name="remote_user_identity"),
        ]

    def __str__(self) -> str:
        return f"{self.origin_region}:{self.origin_user_id} as {self.user_id}"
