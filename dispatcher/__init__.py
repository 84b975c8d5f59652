"""The fan-out layer: the only names the rest of the project uses.

publish() sends events to every gateway; the hub (dispatcher/hub.py) delivers
them to this process's streams. How events are generated, delivered and
consumed: docs/realtime.md.

The package is imported while Django loads its apps, before models can be:
what reads the stores is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dispatcher.hooks import register_post_handler, register_stream_access
from dispatcher.publisher import Event, publish

if TYPE_CHECKING:
    from dispatcher.api import EventWait, gateway_shutting_down, gateway_snapshot
    from dispatcher.viewers import viewer_count

_LAZY = {
    "EventWait": "dispatcher.api",
    "gateway_shutting_down": "dispatcher.api",
    "gateway_snapshot": "dispatcher.api",
    "viewer_count": "dispatcher.viewers",
}

__all__ = [
    "Event",
    "EventWait",
    "gateway_shutting_down",
    "gateway_snapshot",
    "publish",
    "register_post_handler",
    "register_stream_access",
    "viewer_count",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dispatcher' has no attribute {name!r}")
