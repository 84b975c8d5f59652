"""ASGI entry point for Daphne and uvicorn: HTTP (Django + the SSE stream) and WebSocket.

daphne livecomment.asgi:application
uvicorn livecomment.asgi:application
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livecomment.settings")

import django

django.setup()

from livecomment.lib.checks import require_start_up_checks  # noqa: E402

# DEBUG=0 without collected static files: fail here, not with a 500 on every page.
require_start_up_checks()

from livecomment.server.asgi_handler import get_asgi_application  # noqa: E402
from livecomment.server.embedded_redis import ensure_from_settings  # noqa: E402

# With no REDIS_URL, share (or start, and own) the embedded redis-server.
ensure_from_settings()

django_asgi_app = get_asgi_application()

from livecomment.routing import build_application  # noqa: E402

application = build_application(django_asgi_app)

# A gateway allocates many short-lived objects per event and connection;
# collecting the young generation less often cut Daphne's CPU by about a
# quarter in the reference measurements, and freezing what start-up created
# keeps the collector from scanning it again and again.
import gc  # noqa: E402

from django.conf import settings  # noqa: E402

gc.set_threshold(*settings.GATEWAY_GC_THRESHOLDS)
gc.freeze()
import sys  # noqa: E402

sys.setswitchinterval(settings.GATEWAY_SWITCH_INTERVAL)
