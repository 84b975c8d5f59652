"""A client generated from the served schema works, as a mobile team would use it.

A real gateway serves /api/schema/?format=json; openapi-python-client (pinned
in requirements-dev.txt) generates a Python package from it, which is
imported and driven through a whole scenario with no hand-written HTTP:
sign in, list videos, page comments, post twice with one Idempotency-Key,
report, delete, moderator remove / ban / unban, slow mode, and the typed
errors (`code`, `retry_after`). Every answer must be one the schema documents
(`raise_on_unexpected_status`) and parse into its generated model.

openapi-typescript (pinned in tests/node) turns the same document into
TypeScript types, which must hold every operation and compile with tsc.

The schema is fetched and both generators run once per session; the scenario
runs against a gateway of its own (it needs the test's committed data).
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from tests.servers import Gateways
from videos.models import Video

pytestmark = pytest.mark.processes

NODE_DIR = Path(__file__).resolve().parent / "node"
PACKAGE = "livecomment_generated_client"  # the generated package's import name
OPERATIONS = {
    "auth_token_create",
    "auth_token_destroy",
    "videos_list",
    "videos_retrieve",
    "videos_partial_update",
    "comments_list",
    "comments_create",
    "comments_retrieve",
    "comments_destroy",
    "comments_moderate",
    "comments_report",
    "bans_list",
    "bans_create",
    "bans_destroy",
    "reports_list",
    "reports_resolve",
    "moderation_log",
    "held_list",
}


@pytest.fixture(scope="session")
def served_schema(django_db_setup, tmp_path_factory) -> Path:
    """The document a gateway serves, saved as the generators' input."""
    folder = tmp_path_factory.mktemp("served-schema")
    pool = Gateways(folder)
    try:
        gateway = pool.start()
        r = httpx.get(gateway.url("/api/schema/?format=json"), timeout=30)
    finally:
        pool.stop_all()
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    path = folder / "openapi.json"
    path.write_bytes(r.content)
    return path


@pytest.fixture(scope="session")
def generated_client(served_schema, tmp_path_factory):
    """The Python package openapi-python-client generates, imported."""
    out = tmp_path_factory.mktemp("generated-python")
    config = out / "config.json"
    # No post hooks: formatting the output (ruff) is not what is tested.
    config.write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    generator = Path(sys.executable).parent / "openapi-python-client"
    done = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(served_schema),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(out / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # A schema the generator could only partly read still exits 0, with warnings.
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def node_tools_ready() -> bool:
    """Node and the pinned openapi-typescript / typescript (tests/node, installed on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return False
    wanted = [NODE_DIR / "node_modules" / name for name in ("openapi-typescript", "typescript")]
    if not all(path.is_dir() for path in wanted):
        installed = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, capture_output=True, timeout=300
        )
        if installed.returncode != 0:
            return False
    return all(path.is_dir() for path in wanted)


def sign_in_password(user, password: str) -> None:
    """A password the gateway can check: the tests hash with MD5 for speed
    (tests/conftest.py), which a gateway with the default hashers refuses."""
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(password, hasher.salt())
    user.save(update_fields=["password"])


def import_api(package, *names):
    return [importlib.import_module(f"{package.__name__}.api.v1.{name}") for name in names]


def test_it_runs_the_whole_scenario_through_the_generated_client(generated_client, gateways):
    client_pkg = generated_client
    models = importlib.import_module(f"{PACKAGE}.models")
    Client, AuthenticatedClient = client_pkg.Client, client_pkg.AuthenticatedClient
    (
        auth_token_create,
        videos_list,
        videos_partial_update,
        comments_list,
        comments_create,
        comments_destroy,
        comments_moderate,
        comments_report,
        reports_list,
        bans_create,
        bans_list,
        bans_destroy,
        moderation_log,
    ) = import_api(
        client_pkg,
        "auth_token_create",
        "videos_list",
        "videos_partial_update",
        "comments_list",
        "comments_create",
        "comments_destroy",
        "comments_moderate",
        "comments_report",
        "reports_list",
        "bans_create",
        "bans_list",
        "bans_destroy",
        "moderation_log",
    )
    User = get_user_model()
    alice = User.objects.create_user("alice")
    mod = User.objects.create_user("mod")
    sign_in_password(alice, "alice-password")
    sign_in_password(mod, "mod-password")
    video = Video.objects.create(title="Live now", state=Video.State.LIVE)
    video.moderators.add(mod)
    Video.objects.create(title="Later", state=Video.State.SCHEDULED)
    gateway = gateways.start()
    base = gateway.base

    # Sign in: the token endpoint needs no credentials (a plain Client).
    anonymous = Client(base_url=base, raise_on_unexpected_status=True)
    wrong = auth_token_create.sync_detailed(
        client=anonymous, body=models.TokenRequestRequest(username="alice", password="nope")
    )
    assert wrong.status_code == 400
    assert wrong.parsed.error.code == models.ErrorCode.INVALID_CREDENTIALS

    def sign_in(username):
        answer = auth_token_create.sync(
            client=anonymous, body=models.TokenRequestRequest(username=username, password=f"{username}-password")
        )
        assert isinstance(answer, models.TokenResponse), answer
        # The generated client sends "Authorization: Bearer <token>" by default.
        return AuthenticatedClient(base_url=base, token=answer.token, raise_on_unexpected_status=True)

    as_alice, as_mod = sign_in("alice"), sign_in("mod")

    # List videos, all and by state.
    listed = videos_list.sync(client=as_alice)
    assert isinstance(listed, models.VideoList)
    assert {v.title for v in listed.results} == {"Live now", "Later"}
    live = videos_list.sync(client=as_alice, state=models.VideosListState.LIVE)
    assert [v.id for v in live.results] == [video.pk]

    # Post, then page through the comments (history backwards).
    def post(client, text, key=None):
        body = models.PostCommentRequest(text=text)
        if key is None:
            return comments_create.sync_detailed(video.pk, client=client, body=body)
        return comments_create.sync_detailed(video.pk, client=client, body=body, idempotency_key=key)

    posted = [post(as_alice, f"comment {i}") for i in range(5)]
    assert [p.status_code for p in posted] == [201] * 5
    assert all(isinstance(p.parsed, models.OwnComment) for p in posted)
    first = comments_list.sync(video.pk, client=as_alice, limit=2)
    assert isinstance(first, models.CommentPage)
    assert [c.text for c in first.results] == ["comment 3", "comment 4"]
    assert first.has_more
    texts = [c.text for c in first.results]
    page = first
    while page.has_more:
        page = comments_list.sync(video.pk, client=as_alice, before=page.prev_cursor, limit=2)
        texts = [c.text for c in page.results] + texts
    assert texts == [f"comment {i}" for i in range(5)]
    # Anonymous reads (security {} in the schema) work with the plain Client too, though
    # openapi-python-client types every operation with any security as AuthenticatedClient.
    as_guest = comments_list.sync(video.pk, client=anonymous, limit=2)
    assert [c.text for c in as_guest.results] == ["comment 3", "comment 4"]
    newer = comments_list.sync(video.pk, client=as_alice, after=first.results[0].cursor)
    assert [c.text for c in newer.results] == ["comment 4"]
    assert newer.results[0].author.name == "alice"

    # The same Idempotency-Key twice: one comment, the second answer 200 with it.
    once = post(as_alice, "only once", key="retry-1")
    again = post(as_alice, "only once", key="retry-1")
    assert (once.status_code, again.status_code) == (201, 200)
    assert again.parsed.id == once.parsed.id

    # Report the moderator's comment; the moderator sees it, typed.
    mods_comment = post(as_mod, "a moderator speaks").parsed
    reported = comments_report.sync_detailed(
        mods_comment.id, client=as_alice, body=models.ReportRequestRequest(reason="spam")
    )
    assert reported.status_code == 201
    assert isinstance(reported.parsed, models.ReportResponse)
    assert reported.parsed.comment == mods_comment.id
    queue = reports_list.sync(video.pk, client=as_mod)
    (report,) = queue.results
    assert isinstance(report.comment, models.ReportedComment)
    assert (report.comment.id, report.comment.text, report.comment.author.name) == (
        mods_comment.id,
        "a moderator speaks",
        "mod",
    )
    assert isinstance(report.reporter, models.UserRef)
    assert report.reporter.name == "alice"
    twice = comments_report.sync(mods_comment.id, client=as_alice, body=models.ReportRequestRequest(reason="spam"))
    assert twice.error.code == models.ErrorCode.ALREADY_REPORTED

    # Delete one's own comment.
    assert comments_destroy.sync_detailed(posted[0].parsed.id, client=as_alice).status_code == 204
    # A viewer cannot moderate: a typed 403.
    denied = comments_moderate.sync(
        posted[1].parsed.id, client=as_alice, body=models.ModerateRequestRequest(action=models.ActionEnum.REMOVE)
    )
    assert denied.error.code == models.ErrorCode.PERMISSION_DENIED

    # Moderator: remove a comment, ban by username, unban by id.
    removed = comments_moderate.sync(
        posted[1].parsed.id,
        client=as_mod,
        body=models.ModerateRequestRequest(action=models.ActionEnum.REMOVE, reason="off topic"),
    )
    assert isinstance(removed, models.OwnComment)
    assert removed.status == models.StatusEnum.REMOVED
    ban = bans_create.sync_detailed(
        video.pk, client=as_mod, body=models.BanRequestRequest(user="alice", duration_seconds=600, reason="calm down")
    )
    assert ban.status_code == 201
    assert isinstance(ban.parsed.user, models.UserRef)
    assert (ban.parsed.user.id, ban.parsed.user.name, ban.parsed.by.name) == (alice.pk, "alice", "mod")
    assert [b.user.name for b in bans_list.sync(video.pk, client=as_mod).results] == ["alice"]
    banned = post(as_alice, "let me speak")
    assert banned.status_code == 403
    assert banned.parsed.error.code == models.ErrorCode.BANNED
    assert banned.parsed.error.ends_at is not None
    assert bans_destroy.sync_detailed(video.pk, alice.pk, client=as_mod).status_code == 204
    assert post(as_alice, "back again").status_code == 201
    # A ban by id works too (the schema's oneOf: integer or string).
    by_id = bans_create.sync(video.pk, client=as_mod, body=models.BanRequestRequest(user=alice.pk))
    assert by_id.user.name == "alice"
    assert by_id.by.name == "mod"
    assert bans_destroy.sync_detailed(video.pk, alice.pk, client=as_mod).status_code == 204
    log = moderation_log.sync(video.pk, client=as_mod)
    assert {(row.action, row.actor.name) for row in log.results} >= {("remove", "mod"), ("ban", "mod")}
    assert {row.target_user.name for row in log.results if row.target_user} == {"alice"}

    # Slow mode: the moderator turns it on; alice's second post is a typed 429 with retry_after.
    updated = videos_partial_update.sync(
        video.pk, client=as_mod, body=models.PatchedVideoUpdateRequest(slow_mode_seconds=60)
    )
    assert updated.slow_mode_seconds == 60
    assert post(as_alice, "slowly").status_code == 201
    slowed = post(as_alice, "and again")
    assert slowed.status_code == 429
    assert slowed.parsed.error.code == models.ErrorCode.SLOW_MODE
    assert 1 <= slowed.parsed.error.retry_after <= 60
    assert int(slowed.headers["retry-after"]) == slowed.parsed.error.retry_after

    # A bad parameter and a bad key are typed errors too.
    bad_limit = comments_list.sync(video.pk, client=as_alice, limit=0)
    assert bad_limit.error.code == models.ErrorCode.INVALID_LIMIT
    bad_key = post(as_mod, "keyed", key="k" * 256)
    assert bad_key.status_code == 400
    assert bad_key.parsed.error.code == models.ErrorCode.INVALID_IDEMPOTENCY_KEY


def test_it_generates_typescript_types_that_compile(served_schema, tmp_path):
    if not node_tools_ready():
        pytest.skip("node, npm or the pinned openapi-typescript / typescript is not available")
    bin_dir = NODE_DIR / "node_modules" / ".bin"
    types = tmp_path / "livecomment-api.d.ts"
    done = subprocess.run(
        [str(bin_dir / "openapi-typescript"), str(served_schema), "--output", str(types)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = types.read_text()
    for operation in OPERATIONS:
        assert f'operations["{operation}"]' in text, operation
    # A use of the types as an app would write it; tsc must accept it.
    (tmp_path / "use.ts").write_text(
        'import type { components, operations } from "./livecomment-api";\n'
        'type Posted = operations["comments_create"]["responses"][201]["content"]["application/json"];\n'
        'type Failed = operations["comments_create"]["responses"][429]["content"]["application/json"];\n'
        "export const text = (c: Posted): string => c.text;\n"
        "export const wait = (e: Failed): number | undefined => e.error.retry_after;\n"
        'export const code: components["schemas"]["ErrorCode"] = "slow_mode";\n'
        'export const who = (b: components["schemas"]["Ban"]): string => b.user.name;\n'
        'export const user: components["schemas"]["BanRequestRequest"]["user"] = "alice";\n'
    )
    compiled = subprocess.run(
        [
            str(bin_dir / "tsc"),
            "--noEmit",
            "--strict",
            "--skipLibCheck",
            str(tmp_path / "use.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
