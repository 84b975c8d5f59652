"""The OpenAPI schema, Swagger UI served without a CDN, and static files with DEBUG=0."""

import json
import re
import subprocess
import sys

import httpx
import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema

from tests.servers import ROOT

EXPECTED = {
    "/api/v1/auth/token/": {"post", "delete"},
    "/api/v1/videos/": {"get"},
    "/api/v1/videos/{video_id}/": {"get"},
    "/api/v1/videos/{video_id}/comments/": {"get", "post"},
    "/api/v1/comments/{comment_id}/": {"get", "delete"},
}


def api_routes():
    """Every URL pattern under /api/v1/ in the URLconf, as OpenAPI paths."""
    found = set()

    def walk(patterns, prefix):
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route)
            elif isinstance(p, URLPattern):
                found.add("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))

    walk(get_resolver().url_patterns, "")
    return {r for r in found if r.startswith("/api/v1/")}


@pytest.fixture
def schema(client, db):
    r = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert r.status_code == 200, r.content
    return json.loads(r.content)


def test_it_serves_a_valid_openapi_3_document(schema):
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)  # the official OpenAPI 3 JSON schema
    assert schema["info"]["title"] == "livecomment API"


def test_it_serves_yaml_by_default(client, db):
    import yaml

    r = client.get("/api/schema/")
    assert r.status_code == 200
    assert yaml.safe_load(r.content)["openapi"].startswith("3.")


def test_it_lists_every_endpoint_and_method(schema):
    paths = schema["paths"]
    for path, methods in EXPECTED.items():
        assert path in paths, f"{path} missing from the schema"
        assert methods <= set(paths[path]), f"{path}: {set(paths[path])}"
    # Every API route in the URLconf is documented, including ones added later.
    assert api_routes() <= set(paths), api_routes() - set(paths)


def test_it_documents_parameters_responses_and_errors(schema):
    comments = schema["paths"]["/api/v1/videos/{video_id}/comments/"]
    params = {p["name"] for p in comments["get"]["parameters"]}
    assert {"video_id", "after", "before", "limit"} <= params
    post_params = {p["name"] for p in comments["post"]["parameters"]}
    assert "Idempotency-Key" in post_params
    assert {"200", "201", "400", "401", "404", "409", "422", "429", "503"} <= set(comments["post"]["responses"])
    assert {"200", "400", "404"} <= set(comments["get"]["responses"])
    video_list = schema["paths"]["/api/v1/videos/"]["get"]
    state = next(p for p in video_list["parameters"] if p["name"] == "state")
    assert set(state["schema"]["enum"]) == {"scheduled", "live", "ended"}
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    assert schema["components"]["securitySchemes"]["tokenAuth"]["in"] == "header"


def test_it_generates_without_warnings(tmp_path, db):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.stat().st_size > 1000


def test_the_docs_reference_only_local_assets(client, db):
    r = client.get("/api/docs/")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/html")
    html = r.content.decode()
    assert "swagger-ui" in html
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), "external URL in /api/docs/"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
    assert '"/api/schema/"' in html
    # With DEBUG=1 the assets come straight from the apps (WhiteNoise finders).
    for asset in assets:
        got = client.get(asset)
        assert got.status_code == 200, asset
        assert b"".join(got.streaming_content) if got.streaming else got.content, asset


@pytest.mark.processes
def test_it_serves_static_files_with_debug_off(gateways, tmp_path):
    """DEBUG=0, nothing in front: WhiteNoise serves collectstatic's output."""
    static_root = tmp_path / "static"
    env = gateways.env(DEBUG="0", STATIC_ROOT=str(static_root))
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    gateway = gateways.start(DEBUG="0", STATIC_ROOT=str(static_root))

    r = httpx.get(gateway.url("/api/docs/"))
    assert r.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    bundle = next(a for a in assets if "swagger-ui-bundle" in a)
    # Manifest storage: hashed names, cacheable forever.
    assert re.search(r"swagger-ui-bundle\.[0-9a-f]{12}\.js$", bundle), bundle
    for asset in assets:
        assert asset.startswith("/static/"), asset
        got = httpx.get(gateway.url(asset))
        assert got.status_code == 200, asset
        assert got.content
    got = httpx.get(gateway.url(bundle), headers={"Accept-Encoding": "gzip"})
    assert got.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert got.headers.get("content-encoding") == "gzip"
    assert "immutable" in got.headers.get("cache-control", "") or "max-age" in got.headers.get("cache-control", "")

    # The admin's assets too; and a missing file is a 404, not a 500.
    r = httpx.get(gateway.url("/admin/login/"))
    assert r.status_code == 200
    css = next(a for a in re.findall(r'href="([^"]+\.css)"', r.text) if a.startswith("/static/admin/"))
    assert httpx.get(gateway.url(css)).status_code == 200
    assert httpx.get(gateway.url("/static/nope.js")).status_code == 404
    assert httpx.get(gateway.url("/api/v1/nope/")).status_code == 404
    assert httpx.get(gateway.url("/api/v1/nope/")).json()["error"]["code"] == "not_found"


def test_it_declares_every_request_body_closed(schema):
    """The API refuses fields it does not know (400 unknown_fields); the schema says so."""
    bodies = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                ref = media["schema"].get("$ref", "")
                target = schema["components"]["schemas"][ref.rpartition("/")[2]] if ref else media["schema"]
                assert target.get("additionalProperties") is False, (method, path)
                bodies += 1
    assert bodies >= 7


def test_it_types_the_moderation_objects(schema):
    """Reports, bans and the moderation log name their users and comments with
    component schemas, not free-form maps; the server's objects match them."""
    components = schema["components"]["schemas"]
    assert components["UserRef"]["properties"].keys() == {"id", "name"}
    assert set(components["UserRef"]["required"]) == {"id", "name"}
    reported = components["ReportedComment"]
    # A comment's author, as everywhere a comment is shown: with its roles (badges).
    assert reported["properties"]["author"] == {"$ref": "#/components/schemas/Author"}
    assert components["Author"]["properties"].keys() == {"id", "name", "roles"}
    assert {"id", "cursor", "text", "status", "author"} <= set(reported["required"])

    def target(prop):
        return prop.get("$ref") or prop["allOf"][0]["$ref"]

    user_ref = "#/components/schemas/UserRef"
    report = components["Report"]["properties"]
    assert target(report["comment"]) == "#/components/schemas/ReportedComment"
    assert target(report["reporter"]) == target(report["resolved_by"]) == user_ref
    ban = components["Ban"]["properties"]
    assert target(ban["user"]) == target(ban["by"]) == user_ref
    assert ban["by"]["nullable"] is True
    action = components["ModerationAction"]["properties"]
    assert target(action["actor"]) == target(action["target_user"]) == user_ref
    free_form = {
        (name, key)
        for name in ("Report", "Ban", "ModerationAction", "ReportedComment", "UserRef")
        for key, prop in components[name]["properties"].items()
        if prop.get("type") == "object" and "properties" not in prop
    }
    assert free_form == {("ModerationAction", "details")}  # per action, documented in docs/realtime.md


def test_it_takes_a_user_id_or_a_username_to_ban(schema):
    ban_request = schema["paths"]["/api/v1/videos/{video_id}/bans/"]["post"]["requestBody"]["content"]
    ref = ban_request["application/json"]["schema"]["$ref"].rpartition("/")[2]
    user = schema["components"]["schemas"][ref]["properties"]["user"]
    assert [option["type"] for option in user["oneOf"]] == ["integer", "string"]


def test_it_declares_what_the_server_enforces_on_parameters(schema):
    videos = schema["paths"]["/api/v1/videos/"]["get"]
    state = next(p for p in videos["parameters"] if p["name"] == "state")
    assert "" not in state["schema"]["enum"]
    comments = schema["paths"]["/api/v1/videos/{video_id}/comments/"]
    params = {p["name"]: p for p in comments["get"]["parameters"]}
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    assert params["wait"]["schema"]["minimum"] == 1
    assert params["wait"]["schema"]["maximum"] == 30
    assert params["wait"]["x-requires"] == ["after"]
    assert "after=" in params["wait"]["description"]
    key = next(p for p in comments["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header"
    from comments.services import IDEMPOTENCY_KEY_MAX

    assert key["schema"]["maxLength"] == IDEMPOTENCY_KEY_MAX == 255
    assert "minLength" not in key["schema"]  # empty is no key (clean_idempotency_key)
    assert re.match(key["schema"]["pattern"], "")
    # The pattern is exactly what the server takes from a (Latin-1) header value.
    pattern = re.compile(key["schema"]["pattern"])
    for code in range(256):
        assert bool(pattern.fullmatch(chr(code))) == chr(code).isprintable(), hex(code)


def test_it_declares_the_statuses_and_headers_every_operation_can_answer(schema):
    """405 (a method the path does not take), 429 and 503 everywhere, with
    Retry-After; 415 exactly where there is a body to be of the wrong type."""
    operations = [op for ops in schema["paths"].values() for op in ops.values() if "responses" in op]
    for operation in operations:
        responses = operation["responses"]
        assert {"405", "429", "503"} <= set(responses), operation["operationId"]
        assert ("415" in responses) == ("requestBody" in operation), operation["operationId"]
        for status in ("429", "503"):
            header = responses[status]["headers"]["Retry-After"]
            assert header["required"] is True and header["schema"]["type"] == "integer"
    assert len(operations) >= 18


def test_it_declares_who_may_call_each_operation(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["tokenAuth"]["description"],
    }
    assert "Authorization: Token <key>" in schemes["tokenAuth"]["description"]
    assert "Authorization: Bearer <key>" in schemes["tokenAuth"]["description"]
    paths = schema["paths"]
    assert paths["/api/v1/auth/token/"]["post"]["security"] == []  # sign-in needs no credentials
    anonymous = {
        "/api/v1/videos/",
        "/api/v1/videos/{video_id}/",
        "/api/v1/videos/{video_id}/comments/",
        "/api/v1/videos/{video_id}/replay/",
        "/api/v1/videos/{video_id}/stream",
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            if (path, method) == ("/api/v1/auth/token/", "post"):
                continue
            security = operation["security"]
            assert {"tokenAuth": []} in security and {"bearerAuth": []} in security, (method, path)
            # {} (no credentials) only where an anonymous call works: reads of public things.
            assert ({} in security) == (method == "get" and (path in anonymous or "comment_id" in path)), (method, path)
