"""Render docs/RELIABILITY.md from the figures `make faults` collected.

python -m tests.faults_report var/faults.jsonl > docs/RELIABILITY.md
"""

import json
import platform
import sys
from datetime import UTC, datetime, timezone

COLUMNS = ["clients", "acknowledged", "delivered", "lost", "duplicated"]
RUN_COLUMNS = ["runs", "viewers", "acknowledged", "refused", "lost", "duplicated"]
# Far-behind resumes (tests/test_far_behind_resume.py) have a table of their own.
CATCH_UP_COLUMNS = {
    "server": "server",
    "clients": "clients at once",
    "events_per_client": "events caught up (each)",
    "catch_up_mib_per_client": "MiB each",
    "seconds": "seconds",
    "peak_rss_growth_mib": "peak RSS growth (MiB)",
    "live_latency_max_ms": "live viewer, slowest (ms)",
    "lost": "lost",
    "duplicated": "duplicated",
}


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    catch_ups = [row for row in rows if row.get("catch_up")]
    rows = [row for row in rows if not row.get("catch_up")]
    out = sys.stdout
    out.write("# Reliability: faults survived, with figures\n\n")
    out.write(
        "Every row is a test in `tests/` that injects the fault into real processes (Daphne and\n"
        "uvicorn gateways, a redis-server the test starts and stops, the database file taken away)\n"
        "and asserts zero lost and zero duplicated. Reproduce with `make faults` (loopback only,\n"
        "a few minutes); it rewrites this file.\n\n"
    )
    out.write(
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'}, "
        f"Python {platform.python_version()}.\n\n"
    )
    out.write("| fault | " + " | ".join(COLUMNS) + " | other |\n")
    out.write("| --- | " + " | ".join("---" for _ in COLUMNS) + " | --- |\n")
    for row in rows:
        other = ", ".join(f"{k}={v}" for k, v in row.items() if k not in COLUMNS + ["test", "scenario"])
        out.write(f"| {row['scenario']} | " + " | ".join(str(row.get(c, "")) for c in COLUMNS) + f" | {other} |\n")
    out.write("\n`delivered` counts deliveries (each client receives every acknowledged comment once).\n\n")
    repeated = [row for row in rows if "runs" in row]
    if repeated:
        # Scenarios run several times (a race that shows in one run of several): their totals.
        out.write("### Repeated runs (totals over the runs)\n\n")
        out.write("| fault | server | " + " | ".join(RUN_COLUMNS) + " |\n")
        out.write("| --- | --- | " + " | ".join("---" for _ in RUN_COLUMNS) + " |\n")
        for row in repeated:
            name = row["scenario"].split(" (")[0]
            cells = " | ".join(str(row.get(c, "")) for c in RUN_COLUMNS)
            out.write(f"| {name} | {row.get('server', '')} | {cells} |\n")
        out.write("\n`viewers` per run; `lost` and `duplicated` are deliveries over all viewers and runs.\n\n")
    if catch_ups:
        write_catch_ups(out, catch_ups)
    out.write("## What each fault does\n\n")
    out.write(
        "* **Redis restart**: `tests/test_faults.py::test_it_survives_a_redis_restart_with_200_viewers`.\n"
        "  While Redis is down the API answers 503 `redis_unavailable` and writes nothing; streams stay\n"
        "  open. When it returns, each gateway notices within `REALTIME_REDIS_CHECK_SECONDS`, leaves and\n"
        "  rejoins its groups (the pub/sub layer does not resubscribe on its own) and repairs any gap from\n"
        "  the stream. `groups_after` is the number of gateways subscribed afterwards.\n"
        "* **Empty Redis restart under load**: `tests/test_fault_empty_redis.py`, on uvicorn and Daphne.\n"
        "  `clients` SSE viewers (raw-socket clients of bench/client.py) on one gateway, comments posted\n"
        "  open-loop at ~20/s through another, and the redis-server, which keeps nothing, stopped and\n"
        "  started once per run (`runs`). Every viewer gets every acknowledged comment once, in order:\n"
        "  what the emptied stream no longer holds, the gateway repairs from the database\n"
        "  (`database_repairs` reads, `database_repaired_events` events). `refused` are the 503s while\n"
        "  Redis was away; `unanswered` posts timed out (neither counted nor expected).\n"
        "* **Gateway SIGKILL**: `tests/test_gateway_failure.py`. Clients reconnect to another gateway with\n"
        "  their last id. The dead process's pub/sub subscriptions vanish with its connection; with the\n"
        "  list layer (`CHANNEL_LAYER=core`) its memberships expire after `group_expiry`\n"
        "  (`test_it_keeps_a_live_core_gateways_groups_and_expires_a_dead_ones`).\n"
        "* **Database unavailable**: `tests/test_faults.py::test_it_keeps_streaming_from_redis_while_the_database_is_down`.\n"
        "  Posting answers 503 `database_unavailable`; `/readyz` says 503 with `db: down`; open streams go\n"
        "  on and new viewers get their backlog from Redis (anonymously).\n"
        "* **Stream trimmed below a client's cursor**: `tests/test_resume.py`. The part the stream no longer\n"
        "  holds comes from the database, the rest from the stream, in order.\n"
        "* **Far-behind resume / concurrent-resume load**: `tests/test_far_behind_resume.py`. Clients\n"
        "  100,000 (one) or 20,000 (eight at once, SSE and WebSocket) comments behind get exactly those\n"
        "  events, once, in order; each page is written and drained before the next is read, and a\n"
        "  catching-up connection keeps no live frames, so it is never closed as overflow on a busy video.\n"
        "* **SIGTERM**: `tests/test_drain.py`. Every SSE stream gets a final `retry: 500` and a clean end,\n"
        "  every WebSocket a close with code 4503; clients resume on another gateway.\n"
    )


def write_catch_ups(out, rows: list[dict]) -> None:
    out.write("## Far-behind resume and concurrent-resume load\n\n")
    out.write(
        "Clients resume far behind on one gateway (the stream trimmed to 200 entries, the rest read from\n"
        "the database) while a live viewer of the same gateway gets a comment posted every 0.25 s. The\n"
        "catch-up is read and written `REALTIME_CATCHUP_PAGE` (500) events at a time, so the gateway's\n"
        "memory grows by a page or two per client, not by the history.\n\n"
    )
    out.write("| scenario | " + " | ".join(CATCH_UP_COLUMNS.values()) + " |\n")
    out.write("| --- | " + " | ".join("---" for _ in CATCH_UP_COLUMNS) + " |\n")
    for row in rows:
        cells = " | ".join(str(row.get(key, "")) for key in CATCH_UP_COLUMNS)
        out.write(f"| {row['scenario'].partition(' (')[0]} | {cells} |\n")
    out.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
