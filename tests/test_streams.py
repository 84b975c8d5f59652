"""The SSE and WebSocket endpoints themselves: headers, errors, heartbeats, removals, viewers."""

import json
import time

import httpx
import pytest
from rest_framework.authtoken.models import Token

from comments import services
from tests.base import alice, bob, video
from tests.realtime_clients import Poster, SSEClient, WSClient


def stream_url(gateway, video_id):
    return gateway.url(f"/api/v1/videos/{video_id}/stream")


def test_it_sends_sse_headers_retry_and_padding(gateways, video):
    gateway = gateways.start()
    with httpx.stream("GET", stream_url(gateway, video.pk), headers={"Accept": "text/event-stream"}, timeout=5) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-accel-buffering"] == "no"
        first = b""
        for chunk in r.iter_raw():
            first += chunk
            if b"retry:" in first:
                break
    assert first.startswith(b":")
    assert len(first) > 2048  # padding for buffering proxies
    assert b"retry: 2000\n" in first
    assert b"retry: 2000\n\n" not in first  # not a block of its own: the next event's


def test_it_ends_only_real_events_with_a_blank_line(gateways, video, alice):
    # A blank line dispatches what came before it: after the padding (a block
    # with no field), every block the stream ends has data -- no retry-only or
    # ping-only block that a parser could hand out as an empty event.
    gateway = gateways.start(REALTIME_HEARTBEAT_SECONDS="0.1")
    poster = Poster(gateway.base, Token.objects.create(user=alice).key)
    poster.post(video.pk, "in the backlog")
    body, posted = b"", False
    with httpx.stream("GET", stream_url(gateway, video.pk), headers={"Accept": "text/event-stream"}, timeout=5) as r:
        for chunk in r.iter_raw():
            body += chunk
            if not posted and body.count(b": ping\n") >= 3:
                posted = bool(poster.post(video.pk, "live"))
            if b'"live"' in body and body.count(b": ping\n") >= 6:
                break
    padding, *blocks = body.split(b"\n\n")
    blocks.pop()  # what was read of the block under way
    assert padding.startswith(b":") and not padding.strip(b": ")
    assert blocks and all(b"\ndata: " in b"\n" + block for block in blocks), blocks
    assert b"retry: 2000\n" in blocks[0] and b"in the backlog" in blocks[0]
    assert any(b": ping\n" in block for block in blocks)


def test_it_sends_the_recent_backlog_without_last_event_id(gateways, video, alice):
    for i in range(60):
        services.post_comment(video, alice, f"old {i}")
    gateway = gateways.start()
    client = SSEClient(stream_url(gateway, video.pk)).wait_open()
    assert client.wait_for_comments(50)
    time.sleep(0.2)
    texts = [c["data"]["text"] for c in client.comments()]
    assert texts == [f"old {i}" for i in range(10, 60)]
    client.close()


def test_it_answers_404_for_an_unknown_video(gateways, db):
    gateway = gateways.start()
    r = httpx.get(stream_url(gateway, 9999), headers={"Accept": "text/event-stream"}, timeout=5)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_it_answers_400_for_a_bad_last_event_id(gateways, video):
    gateway = gateways.start()
    r = httpx.get(stream_url(gateway, video.pk), headers={"Last-Event-ID": "yesterday"}, timeout=5)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_last_event_id"


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_it_reads_a_last_event_id_with_whitespace_around_it(gateways, video, alice, server):
    """RFC 9110: a field value has no surrounding whitespace; uvicorn hands it
    over as sent, so "Last-Event-ID: <id> " was a 400 there and a resume on Daphne."""
    import socket

    first = services.post_comment(video, alice, "seen").comment
    services.post_comment(video, alice, "missed")
    gateway = gateways.start(server=server)
    request = (
        f"GET /api/v1/videos/{video.pk}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Last-Event-ID: \t{first.cursor} \r\nAccept: text/event-stream\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(request.encode())
        received = b""
        deadline = time.monotonic() + 5
        while b"missed" not in received and time.monotonic() < deadline:
            received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    assert b"missed" in received and b'"seen"' not in received


def test_it_answers_401_for_a_bad_token(gateways, video):
    gateway = gateways.start()
    r = httpx.get(stream_url(gateway, video.pk) + "?token=nope", timeout=5)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "authentication_failed"


def test_it_sends_heartbeats(gateways, video):
    gateway = gateways.start(REALTIME_HEARTBEAT_SECONDS="0.2")
    client = SSEClient(stream_url(gateway, video.pk)).wait_open()
    assert client.wait_until(lambda c: any(line.startswith(": ping") for line in c.raw_comments), 5)
    client.close()


def test_it_sends_removals_live_and_drops_removed_comments_from_backlogs(gateways, video, alice):
    gateway = gateways.start()
    sse = SSEClient(stream_url(gateway, video.pk)).wait_open()
    ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/"))
    poster = Poster(gateway.base, Token.objects.create(user=alice).key)
    keep = poster.post(video.pk, "keep me")
    doomed = poster.post(video.pk, "remove me")
    for client in (sse, ws):
        assert client.wait_for_comments(2)
    poster.delete(doomed["id"])
    for client in (sse, ws):
        assert client.wait_until(lambda c: c.of_type("comment.removed"), 5)
        removed = client.of_type("comment.removed")
        assert [e["data"] for e in removed] == [{"id": doomed["id"], "cursor": doomed["cursor"]}]
        assert removed[0]["id"] > doomed["cursor"]  # its own position, after the comment's
    # Later joiners never see it: fresh backlog, and a resume from before it.
    fresh = SSEClient(stream_url(gateway, video.pk)).wait_open()
    assert fresh.wait_for_comments(1)
    time.sleep(0.3)
    assert fresh.comment_ids() == [keep["id"]]
    resumed = SSEClient(stream_url(gateway, video.pk), last_event_id=keep["cursor"]).wait_open()
    resumed.wait_until(lambda c: c.of_type("comment.removed"), 5)
    assert resumed.comments() == []  # the removal is replayed, the removed comment is not
    for client in (sse, ws, fresh, resumed):
        client.close()


def test_it_counts_viewers_across_gateways(gateways, video):
    env = {"REALTIME_VIEWERS_INTERVAL": "0.2"}
    a, b = gateways.start(**env), gateways.start(**env)
    clients = [SSEClient(stream_url(g, video.pk)).wait_open() for g in (a, a, b)]
    for client in clients:
        assert client.wait_until(lambda c: any(e["data"]["count"] == 3 for e in c.of_type("viewers")), 10)
    clients.pop().close()
    for client in clients:
        assert client.wait_until(lambda c: c.of_type("viewers")[-1]["data"]["count"] == 2, 10)
    for client in clients:
        client.close()


def test_it_posts_over_the_websocket(gateways, video, alice):
    gateway = gateways.start()
    token = Token.objects.create(user=alice).key
    ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/?token={token}"))
    watcher = SSEClient(stream_url(gateway, video.pk)).wait_open()
    ws.send({"action": "post", "text": "over the socket", "ref": "r1", "idempotency_key": "k1"})
    assert ws.wait_until(lambda c: c.of_type("ack"), 5)
    ack = ws.of_type("ack")[0]
    assert ack["ref"] == "r1"
    assert ack["data"]["text"] == "over the socket"
    assert watcher.wait_for_comments(1)
    assert watcher.comment_ids() == [ack["data"]["id"]]
    ws.send({"action": "post", "text": "over the socket", "ref": "r2"})
    assert ws.wait_until(lambda c: c.of_type("error"), 5)
    error = ws.of_type("error")[0]
    assert error["ref"] == "r2"
    assert error["error"]["code"] == "duplicate"
    ws.send({"action": "post", "text": "over the socket", "ref": "r3", "idempotency_key": "k1"})
    assert ws.wait_until(lambda c: len(c.of_type("ack")) == 2, 5)
    assert ws.of_type("ack")[1]["ref"] == "r3" and ws.of_type("ack")[1]["data"] == ack["data"]  # the original
    ws.send({"action": "post", "text": "another body", "ref": "r4", "idempotency_key": "k1"})
    ws.send({"action": "dance"})
    ws.ws.send("not json")
    assert ws.wait_until(lambda c: len(c.of_type("error")) == 4, 5)
    reused = ws.of_type("error")[1]
    assert reused["ref"] == "r4" and reused["error"]["code"] == "idempotency_key_reused"
    assert [e["error"]["code"] for e in ws.of_type("error")[2:]] == ["unknown_action", "invalid_json"]
    assert watcher.comment_ids() == [ack["data"]["id"]]  # nothing more was written
    ws.close()
    watcher.close()


def test_it_judges_a_websocket_post_by_the_video_as_it_is_now(gateways, video, alice):
    """A socket opened while comments were open must not keep posting after a
    moderator turned them off or the video ended (it held its connect-time copy)."""
    from videos.models import Video

    gateway = gateways.start()
    token = Token.objects.create(user=alice).key
    ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/?token={token}"))
    ws.send({"action": "post", "text": "while open", "ref": "r1"})
    assert ws.wait_until(lambda c: c.of_type("ack"), 5)
    Video.objects.filter(pk=video.pk).update(comments_enabled=False)
    ws.send({"action": "post", "text": "after comments were turned off", "ref": "r2"})
    assert ws.wait_until(lambda c: c.of_type("error"), 5)
    assert ws.of_type("error")[0]["error"]["code"] == "comments_disabled"
    Video.objects.filter(pk=video.pk).update(comments_enabled=True, state=Video.State.ENDED)
    ws.send({"action": "post", "text": "after the end", "ref": "r3"})
    assert ws.wait_until(lambda c: len(c.of_type("error")) == 2, 5)
    assert ws.of_type("error")[1]["error"]["code"] == "video_not_live"
    assert len(ws.of_type("ack")) == 1
    ws.close()


def test_it_refuses_anonymous_posts_over_the_websocket(gateways, video):
    gateway = gateways.start()
    ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/"))
    ws.send({"action": "post", "text": "who am i", "ref": 1})
    assert ws.wait_until(lambda c: c.of_type("error"), 5)
    assert ws.of_type("error")[0]["error"]["code"] == "not_authenticated"
    ws.close()


def test_it_closes_websockets_for_unknown_videos_with_a_reason(gateways, db):
    gateway = gateways.start()
    ws = WSClient(gateway.ws_url("/ws/videos/9999/"))
    assert ws.wait_until(lambda c: c.closed, 5)
    assert ws.of_type("error")[0]["error"]["code"] == "not_found"
    assert ws.ws.close_code == 4404


def test_it_refuses_websockets_from_foreign_origins(gateways, video):
    gateway = gateways.start()
    import pytest
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/"), origin="http://evil.example")


def test_it_notices_a_disconnect_without_waiting_for_a_heartbeat(gateways, video):
    gateway = gateways.start()  # heartbeat 15 s
    client = SSEClient(stream_url(gateway, video.pk)).wait_open()
    client.wait_until(lambda c: c.retry is not None, 5)
    assert httpx.get(gateway.url("/gateway/stats")).json()["videos"] == {str(video.pk): 1}
    client.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if httpx.get(gateway.url("/gateway/stats")).json()["videos"] == {}:
            break
        time.sleep(0.05)
    assert httpx.get(gateway.url("/gateway/stats")).json()["videos"] == {}


def test_it_serves_uvicorn_the_same(gateways, video, alice):
    gateway = gateways.start(server="uvicorn")
    sse = SSEClient(stream_url(gateway, video.pk)).wait_open()
    ws = WSClient(gateway.ws_url(f"/ws/videos/{video.pk}/"))
    poster = Poster(gateway.base, Token.objects.create(user=alice).key)
    posted = [poster.post(video.pk, f"uv {i}") for i in range(5)]
    for client in (sse, ws):
        assert client.wait_for_comments(5)
        assert client.comment_ids() == [c["id"] for c in posted]
        client.close()
    assert json.loads(httpx.get(gateway.url("/gateway/stats")).text)["messages_received"] == 5
