"""The standard matrix (`make bench`): every target at N = 1k, 5k, 10k
connections and 20 comments/s, plus 1k at 200/s; livecomment with G = 1 and 2
gateway processes under Daphne and uvicorn; the write benchmark; then
docs/BENCHMARKS.md, docs/bench-fanout.png and docs/bench-results.json.

Every run starts its target fresh and stops it; a run that fails is recorded
with its error and the matrix goes on. Results are saved after every run, so
an interrupted matrix still leaves what it measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata

from bench import fanout, procstats, report, targets
from bench.targets import ROOT


def versions() -> dict:
    out = {"Python": procstats.machine()["python"]}
    for dist in (
        "Django",
        "channels",
        "channels-redis",
        "daphne",
        "Twisted",
        "uvicorn",
        "uvloop",
        "httptools",
        "redis",
        "django-eventstream",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        from livecomment.server.embedded_redis import redis_server_binary

        v = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True, timeout=10).stdout
        out["redis-server (embedded)"] = v.split("v=")[1].split()[0] if "v=" in v else v.strip()
    except Exception:  # noqa: BLE001 - informational only
        pass
    return out


def git_rev() -> str:
    """HEAD, plus '+dirty (paths)' when the work tree differs (the run measured the files as they were)."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
        paths = sorted({line[3:].split("/")[0] for line in dirty if line.strip()})
        return rev + (f" +uncommitted changes in {', '.join(paths)}" if paths else "")
    except OSError:
        return "?"


def plan(args) -> list[tuple[str, str, int, int, float]]:
    """(kind, server, gateways, connections, rate) for every fan-out run."""
    ns = [int(x) for x in str(args.connections).split(",") if x.strip()]
    gs = [int(x) for x in str(args.gateways).split(",") if x.strip()]
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    points = [(n, args.rate) for n in ns]
    if args.high_rate:
        points.append((1000, args.high_rate))
    if args.busy_rate and 5000 in ns:
        # 5k at 20/s offers 100,000 deliveries/s, which livecomment delivers in full:
        # a ratio to django-eventstream there is capped by the offer, not by us.
        points.append((5000, args.busy_rate))
    runs = []
    for n, rate in points:
        for t in wanted:
            if t == "ceiling":
                runs.append(("ceiling", "-", 1, n, rate))
            elif t.startswith("livecomment"):
                server = t.split("-", 1)[1] if "-" in t else "uvicorn"
                for g in gs:
                    runs.append(("livecomment", server, g, n, rate))
            elif t.startswith("eventstream"):
                server = t.split("-", 1)[1] if "-" in t else "daphne"
                runs.append(("eventstream", server, 1, n, rate))
            else:
                raise SystemExit(f"unknown target {t!r}")
    return runs


def main(args) -> int:
    started = datetime.now(UTC)
    data = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_rev(),
        "machine": procstats.machine(),
        "versions": versions(),
        "settings": f"{args.duration:g} s of publishing per run, {args.client_procs} client processes, "
        "DEBUG=0, throttles off, livecomment on SQLite + embedded Redis for fan-out",
        "write_duration": args.write_duration,
        "runs": [],
        "writes": [],
        "commands": [],
    }

    def save():
        with open(args.results, "w") as f:
            json.dump(data, f, indent=1)

    todo = plan(args)
    t_all = time.monotonic()
    for i, (kind, server, g, n, rate) in enumerate(todo, 1):
        comments = max(1, int(round(rate * args.duration)))
        target = targets.make_target(kind, server if server != "-" else "daphne", g)
        cmd = (
            f"fanout {target.command()} -n {n} --rate {rate:g} --comments {comments} --client-procs {args.client_procs}"
        )
        data["commands"].append(cmd)
        print(
            f"[{i}/{len(todo)}] {target.label}: N={n} R={rate:g}/s ({time.monotonic() - t_all:.0f}s elapsed)",
            flush=True,
        )
        try:
            with target:
                r = fanout.run_fanout(
                    target,
                    connections=n,
                    rate=rate,
                    comments=comments,
                    client_procs=args.client_procs,
                    drain_timeout=30,
                )
            r["command"] = "python -m bench " + cmd
            print("   " + fanout.summary_line(r), flush=True)
        except Exception as exc:  # noqa: BLE001 - record and go on
            traceback.print_exc()
            r = {
                "target": kind,
                "label": target.label,
                "server": target.server,
                "gateways": g,
                "connections_requested": n,
                "rate": rate,
                "error": f"{type(exc).__name__}: {exc}"[:500],
            }
        data["runs"].append(r)
        save()
        time.sleep(1)  # let sockets and processes go

    # (server, database, its URL, Redis URL, extra env, posters, open-loop rate)
    c, rate = args.write_concurrency, args.write_rate
    write_runs = [("uvicorn", "sqlite", None, None, {}, c, None), ("daphne", "sqlite", None, None, {}, c, None)]
    if args.database_url:
        pg = ("postgresql", args.database_url, args.redis_url)
        write_runs += [
            ("uvicorn", *pg, {}, c, None),
            # What one process takes: more posters, larger batches.
            ("uvicorn", *pg, {}, 4 * c, None),
            # The target's form: comments offered at a rate, from many users.
            ("uvicorn", *pg, {}, None, rate),
            ("daphne", *pg, {}, c, None),
            ("daphne", *pg, {}, None, rate),
            # The same posts through Django's request cycle, one at a time (no group commit).
            ("uvicorn", *pg, {"POST_GROUP_COMMIT": "0"}, c, None),
        ]
    for server, db, url, rurl, env, posters, write_rate in write_runs:
        from bench.__main__ import OPEN_LOOP_POSTERS, run_write

        target = targets.Livecomment(
            server, 1, posters=OPEN_LOOP_POSTERS if write_rate else posters, database_url=url, redis_url=rurl, env=env
        )
        load = f"--rate {write_rate:g}" if write_rate else f"--concurrency {posters}"
        cmd = f"write {target.command()} {load} --duration {args.write_duration:g}"
        data["commands"].append(cmd)
        print(f"[write] {target.label} on {db}, {load}", flush=True)
        try:
            w = run_write(target, posters or 0, args.write_duration, write_rate)
            print(
                f"   {w['accepted_per_s']}/s p99 {w['request_ms']['p99']} ms {w['statuses']} {w['errors']}", flush=True
            )
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            w = {
                "label": target.label,
                "database": db,
                "redis": "external" if rurl else "embedded",
                "concurrency": posters,
                "offered_per_s": write_rate,
                "error": f"{type(exc).__name__}: {exc}"[:500],
            }
        w["command"] = "python -m bench " + cmd
        data["writes"].append(w)
        save()

    data["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    save()
    report.write_docs(data, args.out, args.plot)
    report.print_summary(data)
    print(f"\nwrote {args.out}, {args.plot}, {args.results} in {time.monotonic() - t_all:.0f}s")
    return 0


if __name__ == "__main__":
    from bench.__main__ import main as cli

    sys.exit(cli(["matrix", *sys.argv[1:]]))
