"""Abuse limits: posting per user and per IP (REST and WebSocket share the
counters), sign-in attempts per IP + username and per IP (token endpoint,
login page, admin), concurrent streams per IP (SSE 429, WebSocket 4429,
given back on disconnect), waiting long-polls per user and per IP (429,
given back when they end), and request bodies refused before they are read.

Client IPs: REMOTE_ADDR, or with NUM_PROXIES=n the n-th address from the
right of X-Forwarded-For. Loopback (RATE_LIMIT_EXEMPT_IPS) is not limited per
IP, so these tests come from documentation addresses (203.0.113.0/24, ...).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect as ws_connect

from comments.models import Comment
from livecomment.lib import limits
from tests.base import alice, alice_client, bob, client_for, make_user, staff, video
from tests.realtime_clients import SSEClient

IP = "203.0.113.7"
OTHER_IP = "198.51.100.20"


def post(client, video, text, ip=IP, **extra):
    return client.post(f"/api/v1/videos/{video.pk}/comments/", {"text": text}, format="json", REMOTE_ADDR=ip, **extra)


def assert_throttled(r):
    assert r.status_code == 429, (r.status_code, r.content[:200])
    error = r.json()["error"]
    assert error["code"] == "throttled" and error["retry_after"] >= 1
    assert int(r["Retry-After"]) >= 1


# -- posting per IP -------------------------------------------------------------------------


def test_the_post_limit_is_a_sliding_window_and_says_how_long_to_wait(alice_client, video, settings, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    settings.THROTTLE_POST_RATE = "3/min"
    clock = [1_000_000.0]
    monkeypatch.setattr(SimpleRateThrottle, "timer", lambda self: clock[0])

    def post_at(t):
        clock[0] = 1_000_000.0 + t
        return post(alice_client, video, f"at {t}")

    assert [post_at(t).status_code for t in (0, 10, 20)] == [201, 201, 201]
    refused = post_at(30)
    assert_throttled(refused)
    assert refused["Retry-After"] == "30"  # the request at 0 leaves the window at 60
    assert post_at(61).status_code == 201  # it has left: room for one
    refused = post_at(62)
    assert refused["Retry-After"] == "8"  # next to leave: the one at 10, at 70
    assert sorted(Comment.objects.values_list("text", flat=True)) == ["at 0", "at 10", "at 20", "at 61"]


def test_a_rate_of_zero_refuses_every_post_with_429_not_a_500(alice_client, video, settings):
    # THROTTLE_POST_RATE=0/min (allowed by the settings check) stops posting:
    # DRF's own throttle answers 429 and says to wait the whole window.
    settings.THROTTLE_POST_RATE = "0/min"
    refused = post(alice_client, video, "not now")
    assert_throttled(refused)
    assert refused["Retry-After"] == "60"
    assert not Comment.objects.exists()


def test_it_ignores_throttle_counters_left_in_the_old_format(alice, alice_client, video):
    from livecomment.lib.throttling import shared_cache

    # What DRF's throttle kept before the counters moved to a sorted set (a
    # pickled list): still there after an upgrade, for up to a window.
    shared_cache().set(f"throttle_post_{alice.pk}", [1.0, 2.0], 60)
    assert post(alice_client, video, "after the upgrade").status_code == 201


def test_posting_is_limited_per_ip_whoever_posts(db, video, settings):
    settings.THROTTLE_POST_IP_RATE = "3/min"
    users = [client_for(make_user(f"user{i}")) for i in range(4)]
    for i, client in enumerate(users[:3]):
        assert post(client, video, f"comment {i}").status_code == 201
    assert_throttled(post(users[3], video, "one too many from this address"))
    # Another address is not affected; reads are not counted.
    assert post(users[3], video, "from elsewhere", ip=OTHER_IP).status_code == 201
    assert users[0].get(f"/api/v1/videos/{video.pk}/comments/", REMOTE_ADDR=IP).status_code == 200
    assert Comment.objects.count() == 4


def test_the_per_user_limit_still_applies_across_addresses(alice_client, video, settings):
    settings.THROTTLE_POST_RATE = "2/min"
    assert post(alice_client, video, "one", ip="203.0.113.1").status_code == 201
    assert post(alice_client, video, "two", ip="203.0.113.2").status_code == 201
    assert_throttled(post(alice_client, video, "three", ip="203.0.113.3"))


def test_loopback_is_not_limited_per_ip(db, video, settings):
    settings.THROTTLE_POST_IP_RATE = "1/min"
    for i in range(3):
        assert post(client_for(make_user(f"local{i}")), video, f"local {i}", ip="127.0.0.1").status_code == 201


def test_with_num_proxies_the_address_the_proxy_saw_counts(db, video, settings):
    """NUM_PROXIES=1: the last X-Forwarded-For entry (added by our proxy) is the
    client; what the client wrote before it cannot dodge the limit."""
    settings.NUM_PROXIES = 1
    settings.THROTTLE_POST_IP_RATE = "2/min"
    proxy = "10.0.0.1"
    clients = [client_for(make_user(f"natuser{i}")) for i in range(3)]
    for i, spoof in enumerate(["1.1.1.1", "2.2.2.2"]):
        r = post(clients[i], video, f"behind proxy {i}", ip=proxy, HTTP_X_FORWARDED_FOR=f"{spoof}, {IP}")
        assert r.status_code == 201
    assert_throttled(post(clients[2], video, "spoofed", ip=proxy, HTTP_X_FORWARDED_FOR=f"3.3.3.3, {IP}"))
    r = post(clients[2], video, "another client", ip=proxy, HTTP_X_FORWARDED_FOR=OTHER_IP)
    assert r.status_code == 201


def test_client_ip_follows_num_proxies(settings):
    settings.NUM_PROXIES = 0
    assert limits.client_ip("10.0.0.1", "1.2.3.4") == "10.0.0.1"  # X-Forwarded-For is not trusted
    settings.NUM_PROXIES = 1
    assert limits.client_ip("10.0.0.1", "1.2.3.4, 5.6.7.8") == "5.6.7.8"
    assert limits.client_ip("10.0.0.1", None) == "10.0.0.1"
    settings.NUM_PROXIES = 2
    assert limits.client_ip("10.0.0.1", "1.2.3.4, 5.6.7.8 ,9.9.9.9") == "5.6.7.8"
    assert limits.client_ip("10.0.0.1", "5.6.7.8") == "5.6.7.8"


def test_the_operators_endpoints_answer_this_machine_only():
    def scope(client, forwarded=None):
        headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
        return {"client": (client, 5000) if client else None, "headers": headers}

    for client in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert limits.loopback_client(scope(client)), client
        assert limits.loopback_client(scope(client, "127.0.0.1, ::1")), client
    for client in ("10.0.0.1", "203.0.113.9", "::ffff:10.0.0.1", "", None):
        assert not limits.loopback_client(scope(client)), client
    assert not limits.loopback_client(scope("127.0.0.1", "203.0.113.9"))  # a local proxy, an outside client
    assert not limits.loopback_client(scope("127.0.0.1", "127.0.0.1, 203.0.113.9"))


# -- sign-in attempts -----------------------------------------------------------------------------


def obtain(username, password, ip=IP):
    return Client().post(
        "/api/v1/auth/token/",
        {"username": username, "password": password},
        content_type="application/json",
        REMOTE_ADDR=ip,
    )


def test_token_sign_in_is_limited_per_ip_and_username(alice, bob, settings):
    settings.THROTTLE_LOGIN_RATE = "3/min"
    for _ in range(3):
        assert obtain("alice", "wrong").status_code == 400
    r = obtain("alice", "alice-password")  # even the right password: wait
    assert r.status_code == 429 and r.json()["error"]["code"] == "throttled"
    assert int(r["Retry-After"]) >= 1
    assert not Token.objects.exists()
    # The real alice elsewhere, and bob from the same address, are not locked out.
    assert obtain("alice", "alice-password", ip=OTHER_IP).status_code == 200
    assert obtain("bob", "bob-password").status_code == 200
    # Case variations count as the same name.
    assert obtain("ALICE", "x").status_code == 429


def test_sign_in_is_limited_per_ip_across_usernames(alice, settings):
    settings.THROTTLE_LOGIN_IP_RATE = "4/min"
    for i in range(4):
        assert obtain(f"guess{i}", "pw").status_code == 400
    assert obtain("alice", "alice-password").status_code == 429
    assert obtain("alice", "alice-password", ip=OTHER_IP).status_code == 200


def test_the_login_page_says_to_wait(alice, settings):
    settings.THROTTLE_LOGIN_RATE = "2/min"
    client = Client()
    for _ in range(2):
        r = client.post("/accounts/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR=IP)
        assert r.status_code == 200 and "correct username and password" in r.content.decode()
    r = client.post("/accounts/login/", {"username": "alice", "password": "alice-password"}, REMOTE_ADDR=IP)
    assert r.status_code == 429
    assert "Too many sign-in attempts" in r.content.decode() and int(r["Retry-After"]) >= 1
    assert "_auth_user_id" not in client.session
    r = Client().post("/accounts/login/", {"username": "alice", "password": "alice-password"}, REMOTE_ADDR=OTHER_IP)
    assert r.status_code == 302


def test_the_admin_login_is_limited_too(staff, settings):
    """Every way in goes through the throttled authentication backend."""
    settings.THROTTLE_LOGIN_RATE = "2/min"
    client = Client()
    for _ in range(2):
        client.post("/admin/login/", {"username": "staff", "password": "wrong"}, REMOTE_ADDR=IP)
    r = client.post("/admin/login/?next=/admin/", {"username": "staff", "password": "staff-password"}, REMOTE_ADDR=IP)
    assert r.status_code == 200  # the form again, not the redirect of a successful sign-in
    assert "_auth_user_id" not in client.session
    r = Client().post(
        "/admin/login/?next=/admin/", {"username": "staff", "password": "staff-password"}, REMOTE_ADDR=OTHER_IP
    )
    assert r.status_code == 302


def test_sign_in_throttles_fail_open_without_redis(alice, monkeypatch):
    import redis

    from livecomment.lib.throttling import LoginThrottle

    def down(self, request, view):
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(LoginThrottle, "get_cache_key", down)
    assert obtain("alice", "alice-password").status_code == 200


def test_the_token_endpoint_counts_sign_ins_against_the_login_limit(alice, settings):
    settings.THROTTLE_LOGIN_IP_RATE = "2/min"
    assert [obtain("alice", "alice-password").status_code for _ in range(2)] == [200, 200]
    assert obtain("alice", "alice-password").status_code == 429


# -- sign-ups per IP, reports per user ------------------------------------------------------------


def signup(name, ip=IP):
    password = "correct-horse-battery-9"
    return Client().post(
        "/accounts/signup/", {"username": name, "password1": password, "password2": password}, REMOTE_ADDR=ip
    )


def test_sign_up_is_limited_per_ip(db, settings):
    from django.contrib.auth import get_user_model

    settings.THROTTLE_SIGNUP_IP_RATE = "2/hour"
    assert [signup(f"newcomer{i}").status_code for i in range(2)] == [302, 302]
    refused = signup("newcomer2")
    assert refused.status_code == 429
    assert "Too many sign-ups" in refused.content.decode() and int(refused["Retry-After"]) >= 1
    assert not get_user_model().objects.filter(username="newcomer2").exists()
    # Another address, and the machine itself, are not affected.
    assert signup("newcomer3", ip=OTHER_IP).status_code == 302
    assert signup("newcomer4", ip="127.0.0.1").status_code == 302


def test_reports_are_limited_per_user(alice_client, bob, video, settings):
    from comments.models import Report

    settings.THROTTLE_REPORT_RATE = "2/min"
    ids = [post(client_for(bob), video, f"reported {i}").json()["id"] for i in range(3)]

    def report(client, comment_id, ip=IP):
        return client.post(f"/api/v1/comments/{comment_id}/report/", {"reason": "rude"}, format="json", REMOTE_ADDR=ip)

    assert [report(alice_client, i).status_code for i in ids[:2]] == [201, 201]
    assert_throttled(report(alice_client, ids[2]))
    assert_throttled(report(alice_client, ids[2], ip=OTHER_IP))  # per user, wherever from
    assert Report.objects.count() == 2
    assert report(client_for(make_user("carol")), ids[2]).status_code == 201  # others still may


# -- streams per IP, on real gateways --------------------------------------------------------------


def sse(gateway, video, ip, path=None):
    headers = {"X-Forwarded-For": ip} if ip else {}
    client = SSEClient(gateway.url(path or f"/api/v1/videos/{video.pk}/stream"), headers=headers).wait_open()
    if client.status != 200:  # a refusal: wait until its body is read (the client reads after "open")
        client.thread.join(5)
    return client


def ws(gateway, video, ip):
    return ws_connect(
        gateway.ws_url(f"/ws/videos/{video.pk}/"),
        origin=gateway.base,
        additional_headers={"X-Forwarded-For": ip},
        open_timeout=10,
    )


def ws_outcome(conn) -> tuple[str, int | None]:
    """First frame's event, and the close code if the server closed."""
    first = json.loads(conn.recv(timeout=5))
    if first.get("event") == "error":
        try:
            conn.recv(timeout=5)
        except Exception:  # noqa: BLE001 - closed, as expected
            pass
        return first["error"]["code"], conn.close_code
    return first.get("event"), None


def wait_for(predicate, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.processes
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_concurrent_streams_are_limited_per_ip(gateways, video, server):
    gateway = gateways.start(server, MAX_STREAMS_PER_IP="2", NUM_PROXIES="1")
    a = "203.0.113.50"
    first, second = sse(gateway, video, a), sse(gateway, video, a)
    assert first.status == second.status == 200

    third = sse(gateway, video, a)
    assert third.status == 429
    assert json.loads(third.body)["error"]["code"] == "too_many_streams"
    assert third.response_headers["content-type"] == "application/json"
    assert int(third.response_headers["retry-after"]) >= 1
    with ws(gateway, video, a) as conn:
        assert ws_outcome(conn) == ("too_many_streams", 4429)

    # Other addresses, and the machine itself, are not affected.
    others = [
        sse(gateway, video, OTHER_IP),
        sse(gateway, video, None),
        sse(gateway, video, None),
        sse(gateway, video, None),
    ]
    assert [c.status for c in others] == [200] * 4

    # Closing a stream gives its slot back, over SSE and WebSocket alike.
    first.close()
    assert wait_for(lambda: sse_status(gateway, video, a) == 200)
    with ws(gateway, video, a) as conn:
        assert ws_outcome(conn)[1] is None  # accepted: the backlog/viewers frames come
        assert sse_status(gateway, video, a) == 429
    assert wait_for(lambda: sse_status(gateway, video, a) == 200)

    # Refusals hold no slot: streams that failed (unknown video, bad token) count for nothing.
    for path in ("/api/v1/videos/999999/stream", f"/api/v1/videos/{video.pk}/stream?token=bad"):
        refused = sse(gateway, video, "203.0.113.60", path)
        assert refused.status in (401, 404)
        refused.close()
    extra = [sse(gateway, video, "203.0.113.60") for _ in range(2)]
    assert [c.status for c in extra] == [200, 200]
    for client in [second, third, *others, *extra]:
        client.close()


def sse_status(gateway, video, ip) -> int | None:
    """Open and close one stream; its status."""
    client = sse(gateway, video, ip)
    status = client.status
    client.close()
    return status


@pytest.mark.processes
def test_websocket_posts_share_the_rest_apis_limits(gateways, video, alice):
    gateway = gateways.start(THROTTLE_POST_RATE="2/min")
    token = Token.objects.create(user=alice).key
    with ws_connect(
        gateway.ws_url(f"/ws/videos/{video.pk}/?token={token}"), origin=gateway.base, open_timeout=10
    ) as conn:
        replies = []
        for i in range(3):
            conn.send(json.dumps({"action": "post", "text": f"over the socket {i}", "ref": str(i)}))
            while True:
                frame = json.loads(conn.recv(timeout=10))
                if frame.get("ref") == str(i):
                    replies.append(frame)
                    break
    assert [r["event"] for r in replies] == ["ack", "ack", "error"]
    assert replies[2]["error"]["code"] == "throttled" and replies[2]["error"]["retry_after"] >= 1
    # ...and the same user over REST is throttled too: one counter.
    r = httpx.post(
        gateway.url(f"/api/v1/videos/{video.pk}/comments/"),
        json={"text": "over REST"},
        headers={"Authorization": f"Token {token}"},
    )
    assert r.status_code == 429
    assert Comment.objects.count() == 2


# -- bodies too large, on a real server -----------------------------------------------------------


def raw_request(gateway, head: bytes, body_chunks=(), read_timeout=5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=read_timeout) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                break  # the server answered and closed: it read no further
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            answer += data
    return answer


@pytest.mark.processes
def test_uvicorn_refuses_a_huge_body_before_reading_it(gateways, video):
    gateway = gateways.start("uvicorn")
    started = time.monotonic()
    # 10 GB announced, a few bytes sent: the answer comes at once.
    head = (
        f"POST /api/v1/videos/{video.pk}/comments/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
    ).encode()
    answer = raw_request(gateway, head, [b'{"text": "'])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 5
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "body_too_large"

    # Chunked, no length: cut off just past the limit.
    head = (
        b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 65536
    chunks = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(200))  # 13 MB offered
    answer = raw_request(gateway, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# -- waiting long-polls per user and per IP, on a real gateway ------------------------------------


def waiting_on(gateway, video) -> int:
    """Connections (streams and waiting long-polls) this gateway's hub holds for the video."""
    return httpx.get(gateway.url("/gateway/stats"), timeout=5).json()["videos"].get(str(video.pk), 0)


class Polls:
    """Long-polls running in threads; each one's response once it ends."""

    def __init__(self, url: str, headers: dict, wait: int):
        self.url, self.headers, self.wait = url, headers, wait
        self.threads: list[threading.Thread] = []
        self.responses: list[httpx.Response] = []

    def start(self, n: int) -> Polls:
        for _ in range(n):
            thread = threading.Thread(target=self._poll, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _poll(self):
        self.responses.append(httpx.get(f"{self.url}&wait={self.wait}", headers=self.headers, timeout=60))

    def waiting(self) -> int:
        return sum(t.is_alive() for t in self.threads)

    def join(self) -> list[httpx.Response]:
        for thread in self.threads:
            thread.join(60)
        return self.responses


def assert_too_many_polls(r):
    assert r.status_code == 429, (r.status_code, r.text[:200])
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "too_many_long_polls"
    assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.processes
def test_it_caps_waiting_long_polls_per_user(gateways, video, alice, bob):
    gateway = gateways.start("uvicorn", MAX_LONG_POLLS_PER_USER="3")
    alice_token, bob_token = Token.objects.create(user=alice).key, Token.objects.create(user=bob).key
    bob_poster = httpx.Client(base_url=gateway.base, headers={"Authorization": f"Token {bob_token}"}, timeout=10)
    anchor = bob_poster.post(f"/api/v1/videos/{video.pk}/comments/", json={"text": "anchor"}).json()
    url = gateway.url(f"/api/v1/videos/{video.pk}/comments/?after={anchor['cursor']}")
    as_alice = {"Authorization": f"Token {alice_token}"}

    polls = Polls(url, as_alice, wait=30).start(3)
    assert wait_for(lambda: waiting_on(gateway, video) == 3, timeout=20)
    # One more from the same account, however many: refused at once, from loopback too.
    refused = Polls(url, as_alice, wait=30).start(5).join()
    assert len(refused) == 5
    for r in refused:
        assert_too_many_polls(r)
    # Everything else still answers while the three wait: the same user's
    # plain reads, other endpoints, and another user's long-poll.
    assert httpx.get(url, headers=as_alice, timeout=10).status_code == 200
    assert httpx.get(gateway.url("/api/v1/videos/"), headers=as_alice, timeout=10).status_code == 200
    other = httpx.get(f"{url}&wait=1", headers={"Authorization": f"Token {bob_token}"}, timeout=10)
    assert other.status_code == 200 and other.json()["results"] == []
    assert polls.waiting() == 3

    # A comment ends the three polls, and their slots are given back.
    posted = bob_poster.post(f"/api/v1/videos/{video.pk}/comments/", json={"text": "wake up"}).json()
    answers = polls.join()
    assert [r.status_code for r in answers] == [200] * 3
    assert all([c["id"] for c in r.json()["results"]] == [posted["id"]] for r in answers)
    after = gateway.url(f"/api/v1/videos/{video.pk}/comments/?after={posted['cursor']}")
    again = Polls(after, as_alice, wait=2).start(3).join()
    assert [r.status_code for r in again] == [200] * 3
    bob_poster.close()


@pytest.mark.processes
def test_waiting_long_polls_hold_no_thread(gateways, video, alice):
    """Uncapped, forty polls wait at once -- far more than the API's thread pool
    has threads -- and reads that need a pool thread still answer meanwhile."""
    gateway = gateways.start("uvicorn", MAX_LONG_POLLS_PER_USER="0")
    as_alice = {"Authorization": f"Token {Token.objects.create(user=alice).key}"}
    anchor = httpx.post(
        gateway.url(f"/api/v1/videos/{video.pk}/comments/"), json={"text": "anchor"}, headers=as_alice, timeout=10
    ).json()
    url = gateway.url(f"/api/v1/videos/{video.pk}/comments/?after={anchor['cursor']}")
    polls = Polls(url, as_alice, wait=30).start(40)
    assert wait_for(lambda: waiting_on(gateway, video) == 40, timeout=30)
    for _ in range(3):
        assert httpx.get(url, headers=as_alice, timeout=20).status_code == 200
    assert polls.waiting() == 40
    posted = httpx.post(
        gateway.url(f"/api/v1/videos/{video.pk}/comments/"), json={"text": "all wake"}, headers=as_alice, timeout=10
    ).json()
    answers = polls.join()
    assert len(answers) == 40
    assert all(r.status_code == 200 and r.json()["results"][0]["id"] == posted["id"] for r in answers)


@pytest.mark.processes
def test_it_caps_waiting_long_polls_per_ip(gateways, video, alice):
    gateway = gateways.start("daphne", MAX_LONG_POLLS_PER_IP="2", NUM_PROXIES="1")
    poster = httpx.Client(
        base_url=gateway.base, headers={"Authorization": f"Token {Token.objects.create(user=alice).key}"}, timeout=10
    )
    anchor = poster.post(f"/api/v1/videos/{video.pk}/comments/", json={"text": "anchor"}).json()
    poster.close()
    url = gateway.url(f"/api/v1/videos/{video.pk}/comments/?after={anchor['cursor']}")
    from_ip = {"X-Forwarded-For": IP}

    polls = Polls(url, from_ip, wait=3).start(2)
    assert wait_for(lambda: waiting_on(gateway, video) == 2, timeout=20)
    assert_too_many_polls(httpx.get(f"{url}&wait=3", headers=from_ip, timeout=10))
    # Another address is not affected; a poll with something to answer at once never waits, so it is not capped.
    elsewhere = httpx.get(f"{url}&wait=1", headers={"X-Forwarded-For": OTHER_IP}, timeout=10)
    assert elsewhere.status_code == 200
    first = gateway.url(f"/api/v1/videos/{video.pk}/comments/?after=0-0")
    assert httpx.get(f"{first}&wait=3", headers=from_ip, timeout=10).status_code == 200

    # The waits end empty; the address may wait again.
    assert [r.status_code for r in polls.join()] == [200, 200]
    assert httpx.get(f"{url}&wait=1", headers=from_ip, timeout=10).status_code == 200
