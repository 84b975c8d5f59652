"""Liveness and readiness, for load balancers, orchestrators and operators.

* `GET /healthz` -- the service's health (the API contract since the first
  release): 200 `{"status": "ok", "db": "ok", "redis": "ok"}`, or 503 naming
  what is down, e.g. `{"status": "down", "db": "down", "redis": "ok"}`.
* `GET /livez` -- liveness only: 200 whenever this process answers, with the
  same fields for a human to read. A database or Redis outage is not a
  reason to restart a gateway (a restart cannot fix it, and streams of what
  is already in Redis keep working), so point liveness probes here.
* `GET /readyz` -- readiness: 200 `{"status": "ready", "db": "ok", "redis": "ok"}`
  when this process can take traffic, else 503 naming what is down:
  `{"status": "not_ready", "db": "down", "redis": "ok"}`, plus
  `"gateway": "draining"` while it shuts down. Take it out of the load
  balancer's rotation on 503.

With REDIS_URLS the answers also list each host ("redis_shards", by position);
with REDIS_CLUSTER_URL they count the cluster's nodes that are up and down
("redis_nodes"): a node is up when it answers and says `cluster_state:ok`.
"""

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import JsonResponse

from livecomment.lib import redis_client


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "down"
        connection.close_if_unusable_or_obsolete()
        return False


def dependency_checks() -> dict:
    shards = redis_client.ping_shards()
    checks = {"db": "ok" if database_ok() else "down", "redis": "ok" if all(shards.values()) else "down"}
    if redis_client.cluster_mode():
        # REDIS_CLUSTER_URL: how many of the cluster's primaries (and the channel
        # layer's host, when it is outside the cluster) answer, without naming them.
        up = sum(shards.values())
        checks["redis_nodes"] = {"ok": up, "down": len(shards) - up}
    elif len(shards) > 1:  # REDIS_URLS: say which host is down (by position in the list)
        checks["redis_shards"] = ["ok" if up else "down" for up in shards.values()]
    return checks


def healthz(request):
    """200 when the database and Redis answer, else 503 naming what is down."""
    checks = dependency_checks()
    healthy = all(checks[k] == "ok" for k in ("db", "redis", "gateway") if k in checks)
    return JsonResponse({"status": "ok" if healthy else "down", **checks}, status=200 if healthy else 503)


def livez(request):
    """Liveness: 200 while the process answers; says which dependency is down."""
    checks = dependency_checks()
    healthy = all(checks[k] == "ok" for k in ("db", "redis", "gateway") if k in checks)
    return JsonResponse({"status": "ok" if healthy else "degraded", **checks}, status=200)


def _draining() -> bool:
    from dispatcher import gateway_shutting_down

    return gateway_shutting_down()


async def readyz(request):
    """Readiness: 200 when the database and Redis answer and the process is not draining."""
    checks = await sync_to_async(dependency_checks)()
    if _draining():
        checks["gateway"] = "draining"
    ready = all(checks[k] == "ok" for k in ("db", "redis", "gateway") if k in checks)
    return JsonResponse({"status": "ready" if ready else "not_ready", **checks}, status=200 if ready else 503)
