"""Property tests of the write path and the API (hypothesis): whatever arrives,
the answer is a 2xx or a clear 4xx with {"error": {"code", "message"}} --
never a 500 -- and nothing half-written is left behind: no comment row
without a stream position, no comment event in the stream without its row.

Examples per test are bounded (EXAMPLES) so the file runs in well under a
minute; CI runs it with everything else.

Found by these tests and fixed: `?before=0-0` was a 500 (Redis refuses the
exclusive range "(0-0"); bodies over the limit were read in full first.
"""

from __future__ import annotations

import asyncio
import json
import os
import unicodedata

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comments import hotstore, services
from comments.models import Comment
from livecomment.lib.errors import ServiceError
from tests.base import alice, client_for, staff, video
from videos.models import Video

# CI: 60 per test. A deeper local run: PROPERTY_EXAMPLES=1000 pytest tests/test_properties.py
EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", "60"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,  # no example database under the project tree
)

# Any code point, surrogates included (sent as raw JSON escapes: "\ud800"),
# with the troublesome classes drawn often: controls, format characters,
# separators, newlines of every kind.
any_char = st.one_of(
    st.characters(exclude_categories=()),
    st.characters(categories=["Cs", "Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn"]),
    st.sampled_from(["\n", "\r", "\t", "\x00", "\u2028", "\ufeff", "\u200b", "<", "&", '"', "\\"]),
)
any_text = st.one_of(
    st.text(any_char, max_size=600),
    st.lists(st.sampled_from(["\r\n", " ", "a", "\r", "\n"]), max_size=10).map("".join),
    # Long runs: around the limit, and far over it.
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "🎉", " ", "\n", "\x00"]), st.integers(0, 200_000)),
    st.builds(
        lambda a, n, b: a + "x" * n + b,
        st.text(any_char, max_size=5),
        st.integers(490, 510),
        st.text(any_char, max_size=5),
    ),
)
small_text = st.text(any_char, max_size=40)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    small_text,
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(any_char, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def expected_text(text: str) -> tuple[str | None, str | None]:
    """An independent statement of the rules (ARCHITECTURE.md, step 2):
    (stored text, None) or (None, error code)."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        return None, "empty_text"
    if len(text) > django_settings.COMMENT_MAX_LENGTH:
        return None, "too_long"
    if any(c != "\n" and unicodedata.category(c) in ("Cc", "Cs") for c in text):
        return None, "control_characters"
    return text, None


def body_bytes(value) -> bytes:
    """JSON with every non-ASCII character escaped, so lone surrogates travel
    as the escapes a client could send ("\\ud800"), not as invalid UTF-8."""
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def assert_clear_answer(r) -> dict | None:
    """A 2xx, or a 4xx carrying the error object. Returns the error, if any."""
    assert r.status_code < 500, (r.status_code, r.content[:500])
    if 200 <= r.status_code < 300:
        return None
    assert 400 <= r.status_code < 500, r.status_code
    assert r["Content-Type"].startswith("application/json"), (r.status_code, r["Content-Type"], r.content[:200])
    error = json.loads(r.content)["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return error


def assert_nothing_half_written(redis) -> None:
    """Invariant 8: no row without a position; every comment event in any
    stream has its row, with the same cursor."""
    assert not Comment.objects.filter(position__isnull=True).exists()
    rows = {c.pk: c.cursor for c in Comment.objects.all()}
    seen = set()
    for key in redis.scan_iter("video:*:events"):
        for entry_id, fields in redis.xrange(key):
            if fields.get("t") in hotstore.COMMENT_TYPES:
                comment_id = int(fields["c"])
                original = fields.get("k") or entry_id  # "k": a restore/approval re-announcing it
                assert rows.get(comment_id) == original, (comment_id, entry_id, rows.get(comment_id))
                seen.add(comment_id)
    assert seen == set(rows), set(rows) ^ seen


@pytest.fixture
def api(alice):
    client = client_for(alice)
    client.raise_request_exception = False  # see what a client would see
    return client


@pytest.fixture
def accepted():
    """Texts accepted so far in this test, casefolded (a repeat within 30 s is a 409 duplicate),
    and ("key", k) for each Idempotency-Key k used."""
    return set()


def url(video):
    return f"/api/v1/videos/{video.pk}/comments/"


# -- the text of a comment -------------------------------------------------------


@PROPERTY
@given(text=any_text)
def test_any_text_is_stored_as_given_or_refused_with_a_reason(api, video, redis, accepted, text):
    body = body_bytes({"text": text})
    r = api.post(url(video), data=body, content_type="application/json")
    error = assert_clear_answer(r)
    stored, code = expected_text(text)
    if len(body) > django_settings.MAX_REQUEST_BODY_BYTES:
        assert r.status_code == 413 and error["code"] == "body_too_large"
    elif code is not None:
        assert r.status_code == 400 and error["code"] == code, (r.status_code, error, text[:50])
    elif stored.casefold() in accepted:  # the duplicate check ignores case
        assert r.status_code == 409 and error["code"] == "duplicate"
    else:
        assert r.status_code == 201, (r.status_code, error)
        body = r.json()
        assert body["text"] == stored
        comment = Comment.objects.get(pk=body["id"])
        assert comment.text == stored and comment.cursor == body["cursor"] and comment.position is not None
        accepted.add(stored.casefold())
    assert_nothing_half_written(redis)


@PROPERTY
@given(value=json_values)
def test_any_json_value_as_the_text_or_the_body(api, video, redis, accepted, value):
    for body in (value, {"text": value}, {"text": "x", "extra": value}):
        r = api.post(url(video), data=body_bytes(body), content_type="application/json")
        error = assert_clear_answer(r)
        if not isinstance(body, dict):
            assert error["code"] == "invalid_body"
        elif set(body) - {"text"}:
            assert error["code"] == "unknown_fields"
        elif "text" not in body:
            assert error["code"] == "missing_text"
        elif not isinstance(body["text"], str):
            assert error["code"] == "invalid_text"
        elif r.status_code == 201:
            accepted.add(r.json()["text"].casefold())
    assert_nothing_half_written(redis)


@PROPERTY
@given(
    extra=st.dictionaries(st.text(any_char, max_size=12).filter(lambda k: k != "text"), json_values, max_size=5),
    word=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=40),
)
def test_unknown_fields_are_refused(api, video, redis, accepted, extra, word):
    text = f"{word} {len(accepted)}"  # never a duplicate
    r = api.post(url(video), data=body_bytes({**extra, "text": text}), content_type="application/json")
    if not extra:
        assert r.status_code == 201, r.content[:300]
        assert r.json()["text"] == text
        accepted.add(text)
    else:
        error = assert_clear_answer(r)
        assert (r.status_code, error["code"]) == (400, "unknown_fields")
        assert len(error["fields"]) == min(len(extra), 10)
    assert_nothing_half_written(redis)


# -- raw bodies: not JSON, not UTF-8, odd charsets ------------------------------------


content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/json; charset=nope",
        "application/json; charset=bz2_codec",  # a bytes-to-bytes codec: a decompression bomb if honoured
        "application/json; charset=",
        "application/JSON",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]
)
raw_bodies = st.one_of(
    st.binary(max_size=300),
    # JSON framing around bytes that are not UTF-8 (lone continuation bytes, overlongs, surrogates as UTF-8).
    st.builds(lambda b: b'{"text": "' + b + b'"}', st.binary(max_size=40)),
    st.sampled_from(
        [
            b'{"text": "\xed\xa0\x80"}',
            b'{"text": "\xc0\xaf"}',
            b'{"text": "\xff"}',
            b"\xef\xbb\xbf{}",
            b'{"text": "ok"',
            b'{"text": "a", "text": 5}',
            b'{"text": 1e999}',
            b"[" * 5000,
            b'"text"',
        ]
    ),
)


@PROPERTY
@given(body=raw_bodies, content_type=content_types)
def test_raw_bodies_never_cause_a_500(api, video, redis, body, content_type):
    r = api.generic("POST", url(video), body, content_type=content_type)
    error = assert_clear_answer(r)
    if r.status_code != 201:
        assert r.status_code in (400, 409, 415), (r.status_code, error)
    assert_nothing_half_written(redis)


@PROPERTY
@given(
    key=st.one_of(
        st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=300),
        st.sampled_from(["", " ", "\x00", "k" * 255, "k" * 256, "ünï", "\x7f"]),
    )
)
def test_any_idempotency_key_is_used_or_refused(api, video, redis, accepted, key):
    text = f"keyed comment {len(accepted)}"
    r = api.post(url(video), data=body_bytes({"text": text}), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)
    error = assert_clear_answer(r)
    if r.status_code in (200, 201):
        accepted.add(text)
        accepted.add(("key", key))
    elif error["code"] == "idempotency_key_reused":  # a key drawn again, with this example's text
        assert ("key", key) in accepted, error
    else:
        assert error["code"] == "invalid_idempotency_key", error
        assert not (0 < len(key) <= 255 and key.isprintable())
    assert_nothing_half_written(redis)


# -- every other endpoint: query strings, ids and bodies --------------------------------


query_values = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=30),
    st.sampled_from(
        [
            "0-0",
            "1-0",
            "18446744073709551615-18446744073709551615",
            "18446744073709551616-0",
            "-1",
            "1e3",
            "0x10",
            "٣",
            "9" * 40,
            "",
            " 5",
            "1764000000000-0",
        ]
    ),
)


@PROPERTY
@given(
    after=st.none() | query_values,
    before=st.none() | query_values,
    limit=st.none() | query_values,
    state=st.none() | query_values,
)
def test_any_query_string_gets_a_clear_answer(api, video, after, before, limit, state):
    params = {k: v for k, v in {"after": after, "before": before, "limit": limit}.items() if v is not None}
    assert_clear_answer(api.get(url(video), params))
    assert_clear_answer(api.get("/api/v1/videos/", {"state": state} if state is not None else {}))


WRITE_ENDPOINTS = [
    ("POST", "/api/v1/comments/{comment}/moderate/"),
    ("POST", "/api/v1/comments/{comment}/report/"),
    ("POST", "/api/v1/videos/{video}/bans/"),
    ("PATCH", "/api/v1/videos/{video}/"),
    ("POST", "/api/v1/auth/token/"),
    ("POST", "/api/v1/videos/{video}/comments/"),
]


@pytest.fixture
def world(video, alice, staff):
    comment = services.post_comment(video, alice, "the comment everyone acts on").comment
    return {"video": video, "comment": comment, "clients": {"staff": client_for(staff), "alice": client_for(alice)}}


@PROPERTY
@given(
    endpoint=st.sampled_from(WRITE_ENDPOINTS),
    body=json_values,
    who=st.sampled_from(["staff", "alice"]),
    ids=st.sampled_from(["real", "missing", "huge"]),
)
def test_any_body_to_any_write_endpoint_gets_a_clear_answer(world, redis, endpoint, body, who, ids):
    method, template = endpoint
    video, comment = world["video"], world["comment"]
    ref = {"real": (video.pk, comment.pk), "missing": (999_999, 999_999), "huge": (2**63, 2**64)}[ids]
    path = template.format(video=ref[0], comment=ref[1])
    client = world["clients"][who]
    client.raise_request_exception = False
    r = client.generic(method, path, body_bytes(body), content_type="application/json")
    assert_clear_answer(r)
    # Keep the video open for the next example (a PATCH may have ended it).
    Video.objects.filter(pk=video.pk).update(state=Video.State.LIVE, comments_enabled=True, slow_mode_seconds=0)
    assert_nothing_half_written(redis)


weird = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            -1,
            1,
            60,
            86400,
            86401,
            2**31,
            2**63,
            10**20,
            -(10**20),
            1.5,
            1e308,
            "",
            " ",
            "\x00",
            "a\x00b",
            "\ud800",
            "\udfff x",
            "\u2028",
            "alice",
            "remove",
            "live",
            [],
            {},
        ]
    ),
    small_text,
    json_values,
)


def some(*values):
    """One of these (what the endpoint expects), or anything at all."""
    return st.one_of(st.sampled_from(values), weird)


# Per endpoint, bodies with the fields it reads (each present or not) and any values.
BODIES = {
    "moderate": st.fixed_dictionaries({"action": some("remove", "restore", "approve")}, optional={"reason": weird}),
    "report": st.fixed_dictionaries({}, optional={"reason": weird}),
    "bans": st.fixed_dictionaries(
        {"user": some("alice", "nobody")},
        optional={"reason": weird, "duration_seconds": some(1, 600, None), "remove_comments": some(True, False)},
    ),
    "video": st.fixed_dictionaries(
        {},
        optional={
            "slow_mode_seconds": some(0, 30),
            "comments_enabled": some(True),
            "state": some("live", "ended", "scheduled"),
        },
    ),
    "token": st.fixed_dictionaries({"username": some("alice"), "password": some("alice-password")}),
    "comments": st.fixed_dictionaries({"text": some("hello")}),
}
PATHS = {
    "moderate": ("POST", "/api/v1/comments/{comment}/moderate/"),
    "report": ("POST", "/api/v1/comments/{comment}/report/"),
    "bans": ("POST", "/api/v1/videos/{video}/bans/"),
    "video": ("PATCH", "/api/v1/videos/{video}/"),
    "token": ("POST", "/api/v1/auth/token/"),
    "comments": ("POST", "/api/v1/videos/{video}/comments/"),
}


@pytest.mark.parametrize("endpoint", sorted(BODIES))
@PROPERTY
@given(data=st.data())
def test_the_fields_each_write_endpoint_reads_take_any_value(world, redis, endpoint, data):
    body = data.draw(BODIES[endpoint], label="body")
    method, template = PATHS[endpoint]
    video, comment = world["video"], world["comment"]
    client = world["clients"]["staff"]
    client.raise_request_exception = False
    r = client.generic(
        method, template.format(video=video.pk, comment=comment.pk), body_bytes(body), content_type="application/json"
    )
    assert_clear_answer(r)
    Video.objects.filter(pk=video.pk).update(state=Video.State.LIVE, comments_enabled=True, slow_mode_seconds=0)
    assert_nothing_half_written(redis)


@PROPERTY
@given(username=st.text(any_char, max_size=2000), password=st.text(any_char, max_size=2000))
def test_any_credentials_get_a_token_or_a_clear_refusal(db, username, password):
    from rest_framework.test import APIClient

    client = APIClient()
    client.raise_request_exception = False
    r = client.post(
        "/api/v1/auth/token/",
        data=body_bytes({"username": username, "password": password}),
        content_type="application/json",
    )
    error = assert_clear_answer(r)
    assert r.status_code in (400, 429), (r.status_code, error)  # no account has these


# -- the write path itself, below any transport -----------------------------------------


@PROPERTY
@given(
    text=st.one_of(any_text, json_values, st.binary(max_size=20), st.just(object())),
    key=st.one_of(st.none(), st.text(max_size=300), st.integers(), st.binary(max_size=5)),
)
def test_post_comment_either_stores_or_raises_a_service_error(video, alice, redis, text, key):
    try:
        result = services.post_comment(video, alice, text, idempotency_key=key)
    except ServiceError as exc:
        assert 400 <= exc.status < 500 and exc.code and exc.message
    else:
        stored, code = expected_text(text)
        assert code is None and result.comment.position is not None
        if result.created:  # (not: an earlier post with the same Idempotency-Key)
            assert result.comment.text == stored
    assert_nothing_half_written(redis)


# -- bodies too large: refused before they are read ------------------------------------


def asgi_app():
    from django.core.asgi import get_asgi_application

    from livecomment.routing import build_application

    return build_application(get_asgi_application())


async def call_asgi(app, path: str, headers: list, chunks, method: str = "POST", http_version: str = "1.1"):
    """One HTTP request through the ASGI app; `chunks` iterates over the body
    chunks the client sends (an endless one never finishes). Returns
    (status, body, chunks read)."""
    sent: list[dict] = []
    read = 0
    done = False

    async def receive():
        nonlocal read, done
        if done:
            await asyncio.sleep(3600)  # no disconnect until the response is out
        chunk = next(chunks, None)
        if chunk is None:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        read += 1
        if read % 64 == 0:
            # Let the event loop run, so the caller's timeout can end a request
            # that reads an endless body (a regression) instead of it filling
            # the disk with Django's spooled upload file.
            await asyncio.sleep(0)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, read


def endless(size=64 * 1024):
    while True:
        yield b"x" * size


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/videos/1/comments/",
        "/api/v1/auth/token/",
        "/api/v1/videos/1/stream",
        "/accounts/login/",
        "/admin/login/",
    ],
)
@pytest.mark.parametrize("declared", [None, 10**12])
def test_a_body_over_the_limit_is_refused_without_reading_it(db, path, declared):
    """Content-Length over MAX_REQUEST_BODY_BYTES: 413 before one byte is
    read. No Content-Length (chunked): cut off just past the limit."""
    headers = [(b"content-length", str(declared).encode())] if declared else []
    status, body, read = asyncio.run(call_asgi(asgi_app(), path, headers, endless()))
    assert status == 413
    assert json.loads(body)["error"]["code"] == "body_too_large"
    limit_chunks = django_settings.MAX_REQUEST_BODY_BYTES // (64 * 1024) + 1
    assert read == (0 if declared else limit_chunks)


def test_an_http2_get_with_an_endless_body_is_cut_off_too(db):
    """HTTP/1 GETs without Content-Length or Transfer-Encoding have no body and
    skip the counting; an HTTP/2 request needs neither header to carry one."""
    status, body, read = asyncio.run(
        call_asgi(asgi_app(), "/api/v1/videos/", [], endless(), method="GET", http_version="2")
    )
    assert status == 413
    assert read == django_settings.MAX_REQUEST_BODY_BYTES // (64 * 1024) + 1


@settings(PROPERTY, max_examples=15)
@given(size=st.integers(1, 3 * 1024 * 1024))
def test_the_limit_is_the_same_through_asgi_and_django(db, size):
    """Under the limit the body is read and parsed; over it, 413."""
    limit = django_settings.MAX_REQUEST_BODY_BYTES
    status, answer, _ = asyncio.run(
        call_asgi(asgi_app(), "/api/v1/auth/token/", [(b"content-length", str(size).encode())], iter([b"x" * size]))
    )
    if size > limit:
        assert status == 413
    else:
        assert status == 400  # read and parsed: not JSON
    assert json.loads(answer)["error"]["code"] == ("body_too_large" if size > limit else "invalid_json")


# -- the WebSocket write path: bad frames never break the socket --------------------------------


BAD_FRAMES = [
    "not json",
    "[1, 2]",
    "null",
    '"post"',
    "{}",
    '{"action": "delete"}',
    '{"action": "post"}',
    '{"action": "post", "text": 5}',
    '{"action": "post", "text": "a\\u0000b"}',
    '{"action": "post", "text": "\\ud800"}',
    '{"action": "post", "text": "ok", "ref": "\\ud800"}',  # a lone surrogate echoed back must not break the socket
    '{"action": "post", "text": "ok", "ref": {"nested": ["\\udfff"]}}',
    '{"action": "post", "text": "x", "idempotency_key": "\\u0000"}',
    '{"action": "post", "text": "' + "x" * 600 + '"}',
    "[" * 5000,
    "x" * (17 * 1024),
]


@pytest.mark.processes
@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_bad_websocket_frames_get_an_error_frame_and_the_socket_stays_usable(gateways, video, alice, server):
    from rest_framework.authtoken.models import Token
    from websockets.sync.client import connect

    gateway = gateways.start(server)
    token = Token.objects.create(user=alice).key
    with connect(
        gateway.ws_url(f"/ws/videos/{video.pk}/?token={token}"), origin=gateway.base, open_timeout=10, max_size=None
    ) as conn:
        for i, frame in enumerate([*BAD_FRAMES, b"\xff\xfe binary"]):
            conn.send(frame)
            conn.send(json.dumps({"action": "post", "text": f"still here {i}", "ref": f"ok{i}"}))
            replies = []
            while not any(r.get("ref") == f"ok{i}" for r in replies):
                reply = json.loads(conn.recv(timeout=10))
                if reply.get("event") in ("ack", "error"):
                    replies.append(reply)
            first, last = replies[0], replies[-1]
            assert last["event"] == "ack", (frame[:60], last)
            if len(replies) > 1:  # the bad frame's answer came first
                assert first["event"] in ("error", "ack") and (first["event"] == "ack" or first["error"]["code"])
    assert Comment.objects.filter(text__startswith="still here").count() == len(BAD_FRAMES) + 1
