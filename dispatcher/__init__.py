"""The fan-out layer: publish() here, delivery in dispatcher/gateway.py.

How events are generated, delivered and consumed: docs/realtime.md.
"""

from dispatcher.publisher import publish

__all__ = ["publish"]
