"""Health endpoint for load balancers and operators."""

from django.db import connection
from django.http import JsonResponse

from livecomment import redis_client


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "down"
        connection.close_if_unusable_or_obsolete()
        return False


def healthz(request):
    """200 when the database and Redis answer, else 503 naming what is down."""
    checks = {"db": "ok" if database_ok() else "down", "redis": "ok" if redis_client.ping() else "down"}
    healthy = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503)
