"""Structured logs: a request id on every request, one JSON line per request and per stream open/close."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from livecomment.lib.logging_config import JsonFormatter, PlainFormatter, RequestIdFilter, clean_request_id
from tests.base import alice, video
from tests.realtime_clients import SSEClient, WSClient
from tests.servers import ROOT


def json_lines(gateway) -> list[dict]:
    lines = []
    for line in gateway.log().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


def wait_for_line(gateway, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        for line in json_lines(gateway):
            if predicate(line):
                return line
        assert time.monotonic() < deadline, f"no such log line in:\n{gateway.log()[-3000:]}"
        time.sleep(0.05)


# --- request ids, in process ---------------------------------------------------------


def test_it_echoes_an_incoming_request_id(client, db):
    r = client.get("/healthz", HTTP_X_REQUEST_ID="lb-4f2a.9")
    assert r["X-Request-ID"] == "lb-4f2a.9"


def test_it_generates_a_request_id_when_none_or_a_bad_one_comes(client, db):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert len(first) == 32 and first != second
    for bad in ("x" * 200, "two words", "line\nbreak", '"quoted"'):
        r = client.get("/healthz", HTTP_X_REQUEST_ID=bad)
        assert r["X-Request-ID"] != bad and len(r["X-Request-ID"]) == 32


def test_it_tags_every_record_made_during_a_request(client, db, caplog):
    caplog.set_level(logging.INFO, logger="livecomment.request")
    client.get("/api/v1/videos/9999/", HTTP_X_REQUEST_ID="req-404")
    records = [r for r in caplog.records if getattr(r, "request_id", None) == "req-404"]
    # Django's own "Not Found" warning and our request line both carry it.
    assert {r.name for r in records} >= {"livecomment.request"}
    line = next(r for r in records if r.name == "livecomment.request")
    assert (line.method, line.path, line.status, line.route) == ("GET", "/api/v1/videos/9999/", 404, "api-video")


def test_the_formatters_write_one_json_object_or_one_plain_line():
    record = logging.LogRecord("livecomment.request", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.status = 200
    record.request_id = "abc"
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "GET /x" and data["level"] == "INFO" and data["logger"] == "livecomment.request"
    assert data["status"] == 200 and data["request_id"] == "abc" and data["time"].endswith("Z")
    plain = PlainFormatter(fmt="%(levelname)s %(message)s").format(record)
    assert plain == "INFO GET /x status=200 request_id=abc"
    assert RequestIdFilter().filter(record)


def test_clean_request_id_keeps_ids_and_replaces_anything_else():
    assert clean_request_id("3f1c2e7a-0b9d-4c55-8a41-2f6f0f0a9e11") == "3f1c2e7a-0b9d-4c55-8a41-2f6f0f0a9e11"
    assert clean_request_id(b"trace:42") == "trace:42"
    assert clean_request_id("") != "" and clean_request_id(None) != clean_request_id(None)


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"DEBUG": "1"}, "plain"), ({"DEBUG": "0", "SECRET_KEY": "x" * 50}, "json"), ({"LOG_FORMAT": "json"}, "json")],
)
def test_log_format_defaults_to_json_in_production(env, expected, tmp_path):
    code = "from django.conf import settings; print(settings.LOG_FORMAT, settings.LOGGING['handlers']['console']['formatter'])"
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'livecomment.settings'); {code}",
        ],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:1/0", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [expected, expected]


def test_a_bad_log_format_fails_at_start():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='livecomment.settings';"
            "from django.conf import settings; settings.LOGGING",
        ],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "LOG_FORMAT": "xml", "REDIS_URL": "redis://127.0.0.1:1/0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "LOG_FORMAT" in out.stderr


# --- on a real gateway ------------------------------------------------------------------


@pytest.mark.processes
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_it_writes_one_json_line_per_request(gateways, video, server):
    gateway = gateways.start(server, LOG_FORMAT="json")
    r = httpx.get(gateway.url(f"/api/v1/videos/{video.pk}/"), headers={"X-Request-ID": "req-one"}, timeout=5)
    assert r.status_code == 200
    assert r.headers["X-Request-ID"] == "req-one"
    line = wait_for_line(gateway, lambda d: d.get("request_id") == "req-one" and d.get("event") == "request")
    assert line["logger"] == "livecomment.request"
    assert line["method"] == "GET"
    assert line["path"] == f"/api/v1/videos/{video.pk}/"
    assert line["route"] == "api-video"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
    assert line["level"] == "INFO" and line["time"]
    assert len([d for d in json_lines(gateway) if d.get("request_id") == "req-one"]) == 1

    # Without an incoming id, the generated one is both returned and logged.
    r = httpx.post(gateway.url(f"/api/v1/videos/{video.pk}/comments/"), json={"text": "anon"}, timeout=5)
    generated = r.headers["X-Request-ID"]
    line = wait_for_line(gateway, lambda d: d.get("request_id") == generated and d.get("event") == "request")
    assert (line["method"], line["status"]) == ("POST", r.status_code)

    # Every line the gateway writes is JSON, the server's own included --
    # except Daphne's access log, which it writes to stdout by itself unless
    # started with -v 0 or --access-log (docs/OPERATIONS.md).
    text = [raw for raw in gateway.log().splitlines() if raw.strip()]
    if server == "daphne":
        text = [raw for raw in text if not re.match(r"^\S+:\d+ - - \[", raw)]
    assert text and all(raw.lstrip().startswith("{") for raw in text), text[:5]


@pytest.mark.processes
def test_it_logs_stream_open_and_close_with_the_request_id(gateways, video):
    gateway = gateways.start(LOG_FORMAT="json")
    sse = SSEClient(gateway.url(f"/api/v1/videos/{video.pk}/stream"), headers={"X-Request-ID": "sse-1"}).wait_open()
    assert sse.response_headers["x-request-id"] == "sse-1"
    opened = wait_for_line(gateway, lambda d: d.get("event") == "stream.open" and d.get("request_id") == "sse-1")
    assert (opened["transport"], opened["video"]) == ("sse", video.pk)
    time.sleep(0.2)
    sse.close()
    closed = wait_for_line(gateway, lambda d: d.get("event") == "stream.close" and d.get("request_id") == "sse-1")
    assert (closed["transport"], closed["video"], closed["reason"]) == ("sse", video.pk, "client")
    assert closed["duration_ms"] >= 150

    ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/"))
    opened = wait_for_line(gateway, lambda d: d.get("event") == "stream.open" and d.get("transport") == "ws")
    ws.close()
    closed = wait_for_line(gateway, lambda d: d.get("event") == "stream.close" and d.get("transport") == "ws")
    assert closed["request_id"] == opened["request_id"] and closed["video"] == video.pk
    assert "duration_ms" in closed

    # A refused stream says so, with its status.
    r = httpx.get(gateway.url("/api/v1/videos/999999/stream"), headers={"X-Request-ID": "sse-404"}, timeout=5)
    assert r.status_code == 404 and r.headers["x-request-id"] == "sse-404"
    refused = wait_for_line(gateway, lambda d: d.get("request_id") == "sse-404")
    assert (refused["event"], refused["status"], refused["code"]) == ("stream.refused", 404, "not_found")


# --- behind the nginx config of docs/OPERATIONS.md ---------------------------------------

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def nginx_conf_from_docs(listen_port: int, upstream_ports: list[int], prefix: Path) -> str:
    """The server config of docs/OPERATIONS.md, on plain HTTP on loopback."""
    doc = (ROOT / "docs" / "OPERATIONS.md").read_text()
    conf = re.search(r"```nginx\n(.*?)```", doc, re.S).group(1)
    conf = re.sub(r"server \{\n    listen 80;.*?\n\}\n", "", conf, flags=re.S)  # the HTTPS redirect
    conf = conf.replace("    listen 443 ssl;\n", f"    listen 127.0.0.1:{listen_port};\n")
    conf = re.sub(r"    http2 on;.*\n(\s+#.*\n)?", "", conf)
    conf = re.sub(r"    ssl_certificate.*\n", "", conf)
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n" for p in upstream_ports)
    conf, count = re.subn(r"(    server 127\.0\.0\.1:80\d\d .*\n)+", servers, conf)
    assert count == 1, "the upstream block of docs/OPERATIONS.md changed shape"
    temp = " ".join(
        f"{name}_temp_path {prefix}/{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        f"events {{ worker_connections 1024; }}\n"
        f"http {{\n access_log {prefix}/access.log;\n {temp}\n{conf}\n}}\n"
    )


@pytest.mark.processes
@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_the_documented_nginx_config_streams_upgrades_and_passes_the_request_id(gateways, video, alice, tmp_path):
    from rest_framework.authtoken.models import Token

    from tests.realtime_clients import Poster
    from tests.servers import free_port

    a = gateways.start("uvicorn", NUM_PROXIES="1", LOG_FORMAT="json")
    b = gateways.start("uvicorn", NUM_PROXIES="1", LOG_FORMAT="json")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf_from_docs(port, [a.port, b.port], tmp_path))
    checked = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and nginx.poll() is None, (tmp_path / "error.log").read_text()
            time.sleep(0.1)

        sse = SSEClient(f"{base}/api/v1/videos/{video.pk}/stream").wait_open()
        ws = WSClient(f"ws://127.0.0.1:{port}/ws/videos/{video.pk}/", origin=base)
        assert sse.status == 200 and len(sse.response_headers["x-request-id"]) == 32  # nginx's $request_id
        poster = Poster(base, Token.objects.create(user=alice).key)
        posted = poster.post(video.pk, "through nginx")
        # Unbuffered: the comment arrives at once, not when a proxy buffer fills.
        assert sse.wait_for_comments(1, timeout=5) and ws.wait_for_comments(1, timeout=5)
        assert sse.comment_ids() == ws.comment_ids() == [posted["id"]]

        r = httpx.get(f"{base}/api/v1/videos/{video.pk}/", timeout=5)
        request_id = r.headers["x-request-id"]
        logged = [d for g in (a, b) for d in json_lines(g) if d.get("request_id") == request_id]
        assert [d["event"] for d in logged] == ["request"]
        # Internals are not served through the proxy.
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 404
        assert httpx.get(f"{base}/gateway/stats", timeout=5).status_code == 404
        sse.close()
        ws.close()
        poster.close()
    finally:
        nginx.terminate()
        nginx.wait(10)
