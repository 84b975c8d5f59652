"""Who may frame the chat-only page (/videos/<id>/chat/).

Every page refuses to be framed (X-Frame-Options: DENY, from Django's
XFrameOptionsMiddleware). The chat-only page is the one exception, and only
for the origins in settings.EMBED_ALLOWED_ORIGINS: it says so with CSP
`frame-ancestors <origins>` ('none' when the list is empty) and, when the list
is not empty, leaves out X-Frame-Options, which can only say DENY or
SAMEORIGIN and would contradict it. 'self' is not listed: the site opens the
panel in a window of its own (the pop-out), never in a frame; a site that
frames it on its own pages lists its own origin.

`parse_origin` is what settings.py checks each configured origin with, so a
bad one stops the start rather than the first frame.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# A host name, optionally with a leading "*." (CSP: any subdomain), or an IPv4
# address; nothing that could end the directive or start another (; , ' space).
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\]$")


def parse_origin(value: str) -> str:
    """`scheme://host[:port]` in lower case, or ImproperlyConfigured saying why not."""
    raw = value.strip()
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ImproperlyConfigured(f"EMBED_ALLOWED_ORIGINS: {value!r} is not an origin ({exc})") from None
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    host = host.lower()
    if parts.scheme.lower() not in ("http", "https"):
        raise ImproperlyConfigured(f"EMBED_ALLOWED_ORIGINS: {value!r} must start with https:// (or http://)")
    if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment or raw.endswith("?"):
        raise ImproperlyConfigured(
            f"EMBED_ALLOWED_ORIGINS: {value!r} must be an origin, scheme://host[:port], with no path, query or user"
        )
    if not (_HOST.match(host) or _IPV6.match(host)):
        raise ImproperlyConfigured(f"EMBED_ALLOWED_ORIGINS: {value!r} has no valid host name")
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def parse_origins(values: list[str]) -> list[str]:
    origins = []
    for value in values:
        if not value.strip():
            continue
        origin = parse_origin(value)
        if origin not in origins:
            origins.append(origin)
    return origins


def frame_ancestors() -> str:
    from django.conf import settings

    return " ".join(settings.EMBED_ALLOWED_ORIGINS) or "'none'"


def allow_framing(response):
    """Mark a page's response as frameable by the configured origins (and only them)."""
    from django.conf import settings

    response.headers["Content-Security-Policy"] = f"frame-ancestors {frame_ancestors()}"
    if settings.EMBED_ALLOWED_ORIGINS:
        response.xframe_options_exempt = True  # XFrameOptionsMiddleware leaves it out
    return response
