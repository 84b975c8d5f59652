"""The arithmetic of docs/SCALING.md: every number in its scenario tables comes from here.

    python -m bench.scaling_model            # markdown tables
    python -m bench.scaling_model --json     # the same, as JSON

No measurement happens here: the inputs are the project's own figures (docs/bench-results.json
as committed, and `python -m bench.scaling_costs`), each named with its source in INPUTS, plus the
model's assumptions in ASSUME. Change one and rerun to see what moves.
"""

from __future__ import annotations

import argparse
import json
import math

# Measured on this 2-core machine. Source of each: docs/SCALING.md, "Inputs".
INPUTS = {
    # docs/BENCHMARKS.md (commit a04306f), "After this run: direct chunk writes": uvicorn x1, 5,000 SSE
    # connections, 20 events/s -- the code as it is now
    "gw_us_per_delivery": 10.1,
    "gw_rss_kib_per_conn": 18.2,
    # docs/bench-results.json (run 2026-11-25 01:18 UTC), row "livecomment uvicorn x1", N=5,000: rss_before
    "gw_rss_mib_base": 104,
    "gw_conns_per_process_max": 10_000,  # the largest N benchmarked per process (run 00:39 UTC, 0 lost)
    # docs/bench-results.json, writes, "livecomment uvicorn x1", PostgreSQL: 10.92 CPU-s / 999 accepted
    "gw_ms_per_post": 10.9,
    # bench/scaling_costs.py, medians of 3 (docs/SCALING.md, appendix)
    "kernel_kib_per_socket": 3.1,
    "sse_frame_bytes": 295,  # one comment frame on the wire, HTTP chunk framing included
    "gw_ms_per_resume": 3.0,  # SSE open with Last-Event-ID, 10 missed (2.1-3.4 ms over three runs)
    "gw_us_per_missed_event": 16.0,  # (500 missed: 10.6-10.9 ms) - (10 missed), per event
    "gw_ms_per_new_open": 3.1,  # no Last-Event-ID: the last 50 comments
    "gw_us_per_channel_message": 22.6,  # channel-layer receive + Frame
    "send_us_300": 1.69,  # kernel send() per write, by size
    "send_us_7500": 2.07,
    "redis_cmds_per_comment": 12,
    "redis_us_per_comment": 285.0,  # redis-server CPU per accepted comment, in the product (12 round trips + 1 connect)
    "redis_us_publish_base": 4.8,
    "redis_us_publish_per_subscriber": 1.5,
    "redis_us_resume": 97.0,  # redis-server CPU per resume, in the product (4 commands)
    "redis_us_per_missed_event": 0.64,  # XRANGE of 1,000 entries: 644 us
    "redis_us_viewers_report": 10.6,  # HSET + EXPIRE + HGETALL of 64 fields, one pipeline
    "redis_us_tip_check": 6.3,
    "publish_bytes_per_subscriber": 355,
    "pg_us_per_comment_tx": 451.0,
    "pg_wal_bytes_per_comment": 1855,
    "pg_us_per_open_lookups": 323.0,  # video by pk + token -> user
    "lb_ms_per_tls_open": 0.37,  # nginx, TLS 1.3 ECDSA handshake + proxied SSE open
    "lb_kib_per_stream": 39.8,
    "lb_us_per_frame": 15.9,
    "tls_handshake_bytes": 1217,  # server flight, one self-signed cert (real chains: 3-5 KB)
    "pg_tx_per_s_one_connection": 767,  # the comment transaction back to back on one connection (fsync on)
    "request_bytes": 300,  # GET .../stream with Last-Event-ID, headers
    "resume_response_bytes": 5197,  # 10 missed comments, 2 KB padding included
}

ASSUME = {
    "utilisation": 0.6,  # plan CPU at 60 % of a core: headroom for connects, GC, bursts
    "cores_per_host": 32,
    "redis_core_budget": 0.7,  # one Redis main thread, planned at 70 %
    "tls_bytes": 22,  # TLS 1.3 record: 5 header + 1 type + 16 AES-GCM tag (measured by scaling_costs tls)
    "tcp_ip_bytes": 52,  # IPv4 20 + TCP 20 + timestamps 12
    "ethernet_bytes": 38,  # 14 header + 4 FCS + 8 preamble + 12 inter-frame gap
    "comment_payload_bytes": 270,  # one comment's id:/event:/data: lines inside a batch frame
    "heartbeat_s": 15,
    "viewer_count_updates_per_s": 0.5,  # a changing count, at most every 2 s
    "regions": 4,
    "relay_bytes_per_event": 400,  # region-stream entry as XADDed to a remote inbox
    "rtt_ms": {
        "us-east~eu-west": 81,
        "us-east~ap-northeast": 145,
        "us-east~sa-east": 120,
        "eu-west~ap-northeast": 212,
        "eu-west~sa-east": 191,
        "ap-northeast~sa-east": 257,
    },
}


def wire(payload: int, a=ASSUME) -> int:
    return payload + a["tls_bytes"] + a["tcp_ip_bytes"] + a["ethernet_bytes"]


def gbit(bytes_per_s: float) -> float:
    return bytes_per_s * 8 / 1e9


def distinct(gateways: int, viewers: int) -> float:
    """Expected gateways holding at least one of a video's viewers, viewers placed at random."""
    return gateways * (1 - (1 - 1 / gateways) ** viewers)


def fleet(conns: float, writes_per_conn: float, us_per_write: float, i=INPUTS, a=ASSUME) -> dict:
    """Gateway processes for `conns` connections each written `writes_per_conn` times a second."""
    u = a["utilisation"]
    per_process = min(i["gw_conns_per_process_max"], u / (writes_per_conn * us_per_write * 1e-6))
    processes = math.ceil(conns / per_process)
    return {
        "conns_per_process": round(per_process),
        "processes": processes,
        "hosts": math.ceil(processes / a["cores_per_host"]),
        "cpu_cores_busy": conns * writes_per_conn * us_per_write * 1e-6,
        "memory_gib": (
            processes * i["gw_rss_mib_base"] * 2**20
            + conns * (i["gw_rss_kib_per_conn"] + i["kernel_kib_per_socket"]) * 1024
        )
        / 2**30,
    }


def batch_us(comments_per_frame: float, i=INPUTS) -> float:
    """CPU per write of a frame carrying several comments: the measured per-delivery cost plus the
    extra kernel cost of the bigger write (send() of 7.5 KB vs 300 B, linear in between)."""
    size = 300 * comments_per_frame
    extra = (i["send_us_7500"] - i["send_us_300"]) * max(0.0, size - 300) / (7500 - 300)
    return i["gw_us_per_delivery"] + extra


def scenario_a(i=INPUTS, a=ASSUME) -> dict:
    viewers, rate = 1_000_000, 100
    out = {}
    # As built: one frame per comment per viewer.
    d = viewers * rate
    f = fleet(viewers, rate, i["gw_us_per_delivery"])
    g = f["processes"]
    out["as_built"] = {
        "deliveries_per_s": d,
        **f,
        "egress_gbit": gbit(d * wire(i["sse_frame_bytes"])),
        "lb_cores": d * i["lb_us_per_frame"] * 1e-6 / a["utilisation"],
        "lb_memory_gib": viewers * i["lb_kib_per_stream"] / 2**20,
        "channel_messages_per_s": rate * g,
        "redis_cores": rate * (i["redis_us_publish_base"] + g * i["redis_us_publish_per_subscriber"]) * 1e-6
        + rate * i["redis_us_per_comment"] * 1e-6,
        "redis_egress_gbit": gbit(rate * g * i["publish_bytes_per_subscriber"]),
        "post_cores": rate * i["gw_ms_per_post"] * 1e-3,
        "pg_cores": rate * i["pg_us_per_comment_tx"] * 1e-6,
        "pg_wal_mb_s": rate * i["pg_wal_bytes_per_comment"] / 1e6,
    }
    # Batched (4 frames/s) without and with sampling (10 comments/s shown of 100).
    for name, shown in (("batched", rate), ("batched_sampled", 10)):
        frames = 4
        per_frame = shown / frames
        us = batch_us(per_frame)
        f = fleet(viewers, frames, us)
        bytes_per_viewer = shown * a["comment_payload_bytes"] + frames * (wire(0) + 20)
        out[name] = {
            "comments_shown_per_s": shown,
            "frames_per_viewer_s": frames,
            "us_per_write": us,
            "deliveries_per_s": viewers * frames,
            **f,
            "egress_gbit": gbit(viewers * bytes_per_viewer),
            "lb_cores": viewers * frames * i["lb_us_per_frame"] * 1e-6 / a["utilisation"],
            "redis_cores": rate
            * (i["redis_us_publish_base"] + f["processes"] * i["redis_us_publish_per_subscriber"])
            * 1e-6
            + rate * i["redis_us_per_comment"] * 1e-6,
        }
    return out


def scenario_b(i=INPUTS, a=ASSUME, rate_per_video: float = 1.0) -> dict:
    videos, per_video = 10_000, 100
    viewers = videos * per_video
    comments = videos * rate_per_video
    writes_per_conn = rate_per_video + 1 / a["heartbeat_s"] + a["viewer_count_updates_per_s"]
    f = fleet(viewers, writes_per_conn, i["gw_us_per_delivery"])
    g = f["processes"]
    out = {"comments_per_s": comments}
    for placement, k in (("random", distinct(g, per_video)), ("by_video", 1.0)):
        pairs = videos * k  # (video, gateway) pairs: groups joined, viewer-count keys, tip checks
        redis_us = (
            comments * (i["redis_us_publish_base"] + k * i["redis_us_publish_per_subscriber"])
            + comments * i["redis_us_per_comment"]
            + pairs / 2 * i["redis_us_viewers_report"]
            + pairs / 5 * i["redis_us_tip_check"]
        )
        out[placement] = {
            "gateways_per_video": k,
            "video_gateway_pairs": pairs,
            "channel_messages_per_s": comments * k,
            "gw_receive_cores": comments * k * i["gw_us_per_channel_message"] * 1e-6,
            "viewer_reports_per_s": pairs / 2,
            "tip_checks_per_s": pairs / 5,
            "redis_cores": redis_us * 1e-6,
            "redis_shards": math.ceil(redis_us * 1e-6 / a["redis_core_budget"]),
            "redis_egress_gbit": gbit(comments * k * i["publish_bytes_per_subscriber"]),
        }
    deliveries = viewers * writes_per_conn
    out["fanout"] = {
        "writes_per_conn_s": writes_per_conn,
        "deliveries_per_s": deliveries,
        **f,
        "egress_gbit": gbit(
            viewers
            * (
                rate_per_video * wire(i["sse_frame_bytes"])
                + a["viewer_count_updates_per_s"] * wire(40)
                + wire(8) / a["heartbeat_s"]
            )
        ),
        "lb_cores": deliveries * i["lb_us_per_frame"] * 1e-6 / a["utilisation"],
        "lb_memory_gib": viewers * i["lb_kib_per_stream"] / 2**20,
    }
    out["writes"] = {
        "post_cores_busy": comments * i["gw_ms_per_post"] * 1e-3,
        "post_processes": math.ceil(comments * i["gw_ms_per_post"] * 1e-3 / a["utilisation"]),
        "pg_cores": comments * i["pg_us_per_comment_tx"] * 1e-6,
        "pg_commits_per_s": comments,
        "pg_wal_mb_s": comments * i["pg_wal_bytes_per_comment"] / 1e6,
    }
    return out


def resume_ms(missed: float, i=INPUTS) -> float:
    return i["gw_ms_per_resume"] + missed * i["gw_us_per_missed_event"] / 1000


def scenario_c(i=INPUTS, a=ASSUME) -> dict:
    clients, window = 1_000_000, 60
    out = {}
    cases = (
        # name, reconnects/s, comments/s of the client's video, mean seconds away
        ("b_spread_60s", clients / window, 1.0, window / 2),
        ("b_unjittered_1s", clients / 1, 1.0, 0.5),
        ("a_spread_60s", clients / window, 100.0, window / 2),
        ("a_spread_60s_capped", clients / window, 100.0, None),  # catch-up capped at 50 comments
    )
    for name, rate, video_rate, away in cases:
        missed = 50 if away is None else video_rate * away
        hot = name.startswith("a_")
        redis_us = i["redis_us_resume"] + missed * i["redis_us_per_missed_event"]
        out[name] = {
            "reconnects_per_s": rate,
            "missed_mean": missed,
            "gw_ms_per_reconnect": resume_ms(missed),
            "gw_cores_busy": rate * resume_ms(missed) * 1e-3,
            "lb_cores_busy": rate * i["lb_ms_per_tls_open"] * 1e-3,
            # a hot video's stream lives on one shard; (b)'s videos spread over all shards
            ("redis_cores_one_shard" if hot else "redis_cores_all_shards"): rate * redis_us * 1e-6,
            "pg_cores": rate * i["pg_us_per_open_lookups"] * 1e-6,
            "pg_queries_per_s": rate * 2,
            "gbit": gbit(
                rate
                * (
                    i["tls_handshake_bytes"]
                    + i["request_bytes"]
                    + i["resume_response_bytes"]
                    + max(0, missed - 10) * i["sse_frame_bytes"]
                )
            ),
        }
    return out


def regions(i=INPUTS, a=ASSUME) -> dict:
    r = a["regions"]
    rtts = list(a["rtt_ms"].values())
    remote = (r - 1) / r  # share of viewers and posters outside any one region
    out = {"mean_rtt_ms": sum(rtts) / len(rtts), "max_rtt_ms": max(rtts)}
    sa, sb = scenario_a(), scenario_b()
    for name, comments, gateways, deliveries in (
        ("a", 100, sa["as_built"]["processes"], 100 * 1_000_000),
        ("b", sb["comments_per_s"], sb["random"]["gateways_per_video"], sb["comments_per_s"] * 100),
    ):
        out[name] = {
            # write locally, broadcast: each event crosses each inter-region link once
            "broadcast_cross_mbit": comments * (r - 1) * a["relay_bytes_per_event"] * 8 / 1e6,
            # write globally, read locally: WAL shipped to r-1 replicas, plus live events to remote gateways
            "global_replication_mbit": comments * (r - 1) * i["pg_wal_bytes_per_comment"] * 8 / 1e6,
            "global_live_cross_mbit": comments * gateways * remote * i["publish_bytes_per_subscriber"] * 8 / 1e6,
            # the ingest loop applies one transaction per remote event, one origin at a time
            "ingest_events_per_s_per_origin": comments / r,
            "ingest_events_per_s_into_each_region": comments * (r - 1) / r,
            "ingest_loop_ceiling_per_s": i["pg_tx_per_s_one_connection"],
            "pg_commits_per_s_each_region": comments,
            # write locally, read globally: each viewer reads every region (N_regions x connections)
            "read_global_connections": 1_000_000 * r,
            "read_global_cross_gbit": gbit(deliveries * remote * wire(i["sse_frame_bytes"])),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = {"a": scenario_a(), "b": scenario_b(), "c": scenario_c(), "regions": regions()}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for name, block in result.items():
        print(f"## {name}")
        for sub, values in block.items():
            if isinstance(values, dict):
                print(f"- {sub}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in values.items()))
            else:
                print(f"- {sub}: {_fmt(values)}")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


if __name__ == "__main__":
    main()
