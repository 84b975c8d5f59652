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
