"""Command line of the benchmark: ``python -m bench <command> ...``.

python -m bench fanout --target livecomment --server uvicorn --gateways 1 -n 5000 --rate 20 --duration 10
python -m bench fanout --target ceiling -n 5000
python -m bench fanout --target eventstream -n 1000
python -m bench write --concurrency 16 --duration 10 [--database-url ... --redis-url ...]
python -m bench smoke                 # 20 connections, 20 comments: exit 1 on any loss/duplicate
python -m bench matrix                # the standard matrix, rewrites docs/BENCHMARKS.md
python -m bench report results.json   # re-render docs/BENCHMARKS.md from saved results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid

from bench import client, fanout, publisher, targets


def add_target_args(p: argparse.ArgumentParser, default_target: str = "livecomment") -> None:
    p.add_argument("--target", choices=["livecomment", "ceiling", "eventstream"], default=default_target)
    p.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    p.add_argument("--gateways", "-g", type=int, default=1, help="gateway processes (livecomment/eventstream)")
    p.add_argument("--posters", type=int, default=8, help="posting users (livecomment)")
    p.add_argument("--database-url", default=None, help="livecomment: PostgreSQL URL instead of SQLite")
    p.add_argument("--redis-url", default=None, help="external Redis (use its own db, e.g. /14) instead of embedded")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for livecomment's gateways (repeatable), e.g. DB_CONN_MAX_AGE=0",
    )


def parse_env(items: list[str]) -> dict:
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env wants KEY=VALUE, got {item!r}")
        env[key] = value
    return env


def make_target(args) -> targets.Target:
    return targets.make_target(
        args.target,
        args.server,
        args.gateways,
        args.posters,
        args.database_url,
        args.redis_url,
        env=parse_env(args.env),
    )


def cmd_fanout(args) -> int:
    comments = args.comments or max(1, int(round(args.rate * args.duration)))
    target = make_target(args)
    print(f"{target.label}: {args.connections} connections, {comments} comments at {args.rate}/s", flush=True)
    with target:
        r = fanout.run_fanout(
            target,
            connections=args.connections,
            rate=args.rate,
            comments=comments,
            client_procs=args.client_procs,
            ws_share=args.ws_share,
            max_inflight=args.max_inflight,
            drain_timeout=args.drain_timeout,
        )
    r["command"] = "python -m bench " + " ".join(sys.argv[1:])
    print(fanout.summary_line(r))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    else:
        print(json.dumps({k: v for k, v in r.items() if k != "timeline_100ms"}, indent=1))
    return 0


def run_write(target: targets.Target, concurrency: int, duration: float, rate: float | None = None) -> dict:
    """Closed loop with `concurrency` posters, or with `rate` open loop at that many comments/s."""
    run = uuid.uuid4().hex[:10]
    with target:
        before = target.snapshot()
        if rate:
            res = asyncio.run(publisher.write_open_loop(target, run, rate, duration))
        else:
            res = asyncio.run(publisher.write_closed_loop(target, run, concurrency, duration))
        snap = target.snapshot()
    out = {
        "label": target.label,
        "mode": f"open loop, {rate:g}/s offered" if rate else "closed loop",
        "concurrency": None if rate else concurrency,
        "database": "postgresql" if getattr(target, "database_url", None) else "sqlite",
        "redis": "external" if getattr(target, "redis_url", None) else "embedded",
    }
    out.update(res.as_dict())
    out["gateway_pids"] = len(snap.gateway_pids)
    # CPU over warm-up + measurement (duration + 1 s): how busy the server was
    out["gateway_cpu_s"] = round(snap.gateway_cpu - before.gateway_cpu, 2)
    out["redis_cpu_s"] = round(snap.redis_cpu - before.redis_cpu, 2)
    out["gateway_cpu_pct"] = round(100 * (snap.gateway_cpu - before.gateway_cpu) / (duration + 1), 1)
    return out


# Users posting in an open-loop write run (each comment from the next one).
OPEN_LOOP_POSTERS = 200


def cmd_write(args) -> int:
    args.target = "livecomment"
    args.posters = max(args.posters, OPEN_LOOP_POSTERS if args.rate else args.concurrency)
    target = make_target(args)
    load = f"{args.rate:g} comments/s offered" if args.rate else f"{args.concurrency} posters"
    print(f"write: {target.label}, {load} for {args.duration}s", flush=True)
    r = run_write(target, args.concurrency, args.duration, args.rate)
    r["command"] = "python -m bench " + " ".join(sys.argv[1:])
    print(json.dumps(r, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


def smoke(
    connections: int = 20,
    comments: int = 20,
    rate: float = 20.0,
    server: str = "daphne",
    ws_share: float = 0.0,
    log=print,
) -> dict:
    target = targets.Livecomment(server=server, gateways=1, posters=4)
    with target:
        r = fanout.run_fanout(
            target,
            connections=connections,
            rate=rate,
            comments=comments,
            client_procs=1,
            ws_share=ws_share,
            drain_timeout=15,
            settle=5,
            log=log,
        )
    return r


def smoke_problems(r: dict, connections: int, comments: int) -> list[str]:
    problems = []
    if r["connections"] != connections:
        problems.append(f"{r['connections']}/{connections} connections opened")
    if r["acked"] != comments:
        problems.append(f"{r['acked']}/{comments} comments acknowledged ({r['publish']})")
    if r["lost"]:
        problems.append(f"{r['lost']} deliveries lost")
    if r["duplicated"]:
        problems.append(f"{r['duplicated']} deliveries duplicated")
    return problems


def cmd_smoke(args) -> int:
    r = smoke(args.connections, args.comments, args.rate, args.server, args.ws_share)
    print(fanout.summary_line(r))
    problems = smoke_problems(r, args.connections, args.comments)
    if problems:
        print("SMOKE FAILED: " + "; ".join(problems))
        return 1
    print("smoke ok: 0 lost, 0 duplicated")
    return 0


def cmd_matrix(args) -> int:
    from bench import matrix

    return matrix.main(args)


def cmd_report(args) -> int:
    from bench import report

    with open(args.results) as f:
        data = json.load(f)
    report.write_docs(data, args.out, args.plot)
    print(f"wrote {args.out} and {args.plot}")
    return 0


def main(argv=None) -> int:
    client.raise_nofile()
    parser = argparse.ArgumentParser(prog="python -m bench", description="livecomment benchmark")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("fanout", help="one fan-out run")
    add_target_args(p)
    p.add_argument("--connections", "-n", type=int, default=1000)
    p.add_argument("--rate", "-r", type=float, default=20.0, help="comments per second")
    p.add_argument("--duration", "-d", type=float, default=10.0, help="seconds of publishing")
    p.add_argument("--comments", "-m", type=int, default=0, help="comments (default rate x duration)")
    p.add_argument("--ws-share", type=float, default=0.0, help="share of connections over WebSocket (livecomment)")
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--max-inflight", type=int, default=32)
    p.add_argument("--drain-timeout", type=float, default=30.0)
    p.add_argument("--json", help="write the result here")
    p.set_defaults(func=cmd_fanout)

    p = sub.add_parser("write", help="write benchmark: C concurrent posters into one video")
    add_target_args(p)
    p.add_argument("--concurrency", "-c", type=int, default=16)
    p.add_argument("--rate", "-r", type=float, default=None, help="open loop: offer this many comments/s instead")
    p.add_argument("--duration", "-d", type=float, default=10.0)
    p.add_argument("--json")
    p.set_defaults(func=cmd_write, server="uvicorn")

    p = sub.add_parser("smoke", help="tiny run; exit 1 on any lost or duplicated delivery")
    p.add_argument("--connections", "-n", type=int, default=20)
    p.add_argument("--comments", "-m", type=int, default=20)
    p.add_argument("--rate", "-r", type=float, default=20.0)
    p.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    p.add_argument("--ws-share", type=float, default=0.0)
    p.set_defaults(func=cmd_smoke)

    p = sub.add_parser("matrix", help="the standard matrix; rewrites docs/BENCHMARKS.md")
    p.add_argument("--connections", default="1000,5000,10000")
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--high-rate", type=float, default=200.0, help="extra run at 1k connections")
    p.add_argument("--busy-rate", type=float, default=40.0, help="extra run at 5k connections")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--gateways", default="1,2")
    p.add_argument(
        "--targets", default="ceiling,livecomment-daphne,livecomment-uvicorn,eventstream-daphne,eventstream-uvicorn"
    )
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--write-concurrency", type=int, default=16)
    p.add_argument("--write-rate", type=float, default=1000.0, help="the open-loop write runs' offered comments/s")
    p.add_argument("--write-duration", type=float, default=10.0)
    p.add_argument("--database-url", default=None, help="also run the write benchmark on PostgreSQL")
    p.add_argument("--redis-url", default=None, help="Redis for the PostgreSQL write run (own db, e.g. /14)")
    p.add_argument("--results", default="docs/bench-results.json")
    p.add_argument("--out", default="docs/BENCHMARKS.md")
    p.add_argument("--plot", default="docs/bench-fanout.png")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("report", help="render docs from a saved results file")
    p.add_argument("results")
    p.add_argument("--out", default="docs/BENCHMARKS.md")
    p.add_argument("--plot", default="docs/bench-fanout.png")
    p.set_defaults(func=cmd_report)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
