"""The `<id:...>` path converter: every id in a URL, HTTP and real-time routes alike.

Django's `<int:>` takes any number of digits; `int()` of thousands of them
raises ValueError, and a number past the database's integer range overflows
the query. Ids here are positive 64-bit integers (BigAutoField, SQLite's
INTEGER); anything longer or larger does not match the route, so it is a 404.
"""

from django.urls import register_converter

MAX_ID = 2**63 - 1


def valid_id(value: str) -> int | None:
    """The id a path segment names, or None when it cannot be one."""
    if not (0 < len(value) <= 19 and value.isascii() and value.isdigit()):
        return None
    number = int(value)
    return number if number <= MAX_ID else None


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = valid_id(value)
        if number is None:
            raise ValueError(value)  # no match: the resolver answers 404
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))


register_converter(IdConverter, "id")
