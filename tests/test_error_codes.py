"""One table of error codes (livecomment.lib.errors.ERROR_CODES): every code the
source can answer with is in it, and the OpenAPI `Error` schema's enum is it."""

from __future__ import annotations

import ast
import re

import pytest

from livecomment.lib import api_paths
from livecomment.lib.errors import _DRF_CODES, ERROR_CODES
from tests.base import alice, alice_client, staff, video
from tests.servers import ROOT

SOURCE_DIRS = ("accounts", "comments", "dispatcher", "livecomment", "regions", "videos")
# Calls whose first argument is an error code (Unavailable's is "<what>", the code "<what>_unavailable").
CODE_CALLS = {"ServiceError", "error_body", "_refuse_slot"}
# A literal JSON error written as bytes (the ASGI endpoints in front of Django).
RAW_CODE = re.compile(rb'\{"error":\s*\{"code":\s*"(\w+)"')


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def codes_in_source() -> tuple[dict[str, str], list[str]]:
    """{code: where} for every literal code; and f-string codes as regexes."""
    found: dict[str, str] = {}
    patterns: list[str] = []
    for package in SOURCE_DIRS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            where = str(path.relative_to(ROOT))
            tree = ast.parse(path.read_text(), filename=where)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and node.args:
                    name, first = _name(node.func), node.args[0]
                    if name in CODE_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                        found.setdefault(first.value, f"{where}:{node.lineno}")
                    elif name in CODE_CALLS and isinstance(first, ast.JoinedStr):
                        patterns.append(
                            "".join(re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+" for v in first.values)
                        )
                    elif name == "Unavailable" and isinstance(first, ast.Constant):
                        found.setdefault(f"{first.value}_unavailable", f"{where}:{node.lineno}")
                    elif name == "parse_int" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                        found.setdefault(f"invalid_{node.args[1].value}", f"{where}:{node.lineno}")
                elif isinstance(node, ast.Constant) and isinstance(node.value, bytes):
                    for code in RAW_CODE.findall(node.value):
                        found.setdefault(code.decode(), f"{where}:{node.lineno}")
                elif isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "code" and isinstance(value, ast.Constant):
                            if isinstance(value.value, str):
                                found.setdefault(value.value, f"{where}:{node.lineno}")
    return found, patterns


def test_it_lists_every_code_the_source_answers_with():
    found, patterns = codes_in_source()
    found.update({code: "_DRF_CODES" for code in _DRF_CODES.values()})
    found.update({code: "api_paths.CODES" for code, _ in api_paths.CODES.values()})
    found["error"] = "the fallback of errors.api_exception_handler and api_paths.as_json"
    missing = {code: where for code, where in found.items() if code not in ERROR_CODES}
    assert not missing, f"codes missing from livecomment.lib.errors.ERROR_CODES: {missing}"
    for pattern in patterns:
        assert any(re.fullmatch(pattern, code) for code in ERROR_CODES), pattern
    # The walk finds what it should (it would pass vacuously on a broken walk).
    assert {"slow_mode", "throttled", "redis_unavailable", "invalid_limit", "forbidden", "too_many_streams"} <= set(
        found
    )


# Calls above that pass on a code they were given, each one from a table the
# test reads (_DRF_CODES, api_paths.CODES) or from callers it reads (_refuse_slot).
FORWARDING = {
    ("livecomment/lib/limits.py", "_refuse_slot"),
    ("livecomment/lib/api_paths.py", "as_json"),
    ("livecomment/lib/errors.py", "api_exception_handler"),
}


def unread_codes() -> list[str]:
    """Calls whose code the walk above cannot read: a variable, an expression, a
    `code=` keyword. Each would be a code that escapes the table unseen."""
    unread = []
    for package in SOURCE_DIRS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            where = str(path.relative_to(ROOT))
            tree = ast.parse(path.read_text(), filename=where)
            enclosing: dict[int, str] = {}
            for node in ast.walk(tree):  # outer functions first: the innermost one is written last
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    for inner in ast.walk(node):
                        enclosing[id(inner)] = node.name
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or _name(node.func) not in CODE_CALLS | {"Unavailable"}:
                    continue
                first = node.args[0] if node.args else None
                readable = isinstance(first, ast.JoinedStr) or (
                    isinstance(first, ast.Constant) and isinstance(first.value, str)
                )
                if (readable and not any(k.arg == "code" for k in node.keywords)) or (
                    where,
                    enclosing.get(id(node)),
                ) in FORWARDING:
                    continue
                unread.append(f"{where}:{node.lineno} {ast.unparse(node)[:80]}")
    return unread


def test_it_reads_the_code_of_every_error_call():
    """The table check cannot be walked around: a code passed as a variable or a
    keyword is refused unless the call forwards a code from a table read above."""
    assert unread_codes() == []


def test_it_explains_every_code():
    for code, meaning in ERROR_CODES.items():
        assert re.fullmatch(r"[a-z_]+", code), code
        assert meaning.strip().endswith("."), code


def test_it_types_the_error_object_with_the_table(client, db):
    r = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schemas = r.json()["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"]
    assert schemas["Error"]["properties"]["error"]["$ref"] == "#/components/schemas/ErrorObject"
    error = schemas["ErrorObject"]
    assert set(error["required"]) == {"code", "message"}
    assert error["properties"]["code"]["allOf"][0]["$ref"] == "#/components/schemas/ErrorCode"
    assert schemas["ErrorCode"]["enum"] == list(ERROR_CODES)
    assert error["properties"]["message"]["type"] == "string"
    assert error["properties"]["retry_after"]["type"] == "integer"
    assert "fields" in error["properties"]
    # Every error answer the document declares is this object.
    refs = 0
    for operations in r.json()["paths"].values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if int(status) >= 400:
                    for media in response.get("content", {}).values():
                        assert media["schema"] == {"$ref": "#/components/schemas/Error"}, status
                        refs += 1
    assert refs > 20


def _nullable(node):
    """OpenAPI 3.0's `nullable` in JSON Schema terms (for jsonschema)."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


def test_its_real_error_answers_match_the_error_schema(client, alice_client, alice, staff, video):
    """Answers with each kind of extra member validate against the published Error."""
    from datetime import timedelta

    import jsonschema
    from django.utils import timezone

    from comments.models import Ban
    from tests.base import client_for

    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    validator = jsonschema.Draft7Validator(
        _nullable({"$ref": "#/components/schemas/Error", "components": document["components"]}),
        format_checker=jsonschema.FormatChecker(),
    )
    comments = f"/api/v1/videos/{video.pk}/comments/"
    answers = {
        "too_long": alice_client.post(comments, {"text": "x" * 501}, format="json"),
        "unknown_fields": alice_client.post(comments, {"text": "x", "smuggled": 1}, format="json"),
        "invalid_state_transition": client_for(staff).patch(
            f"/api/v1/videos/{video.pk}/", {"state": "scheduled"}, format="json"
        ),
        "not_found": alice_client.get("/api/v1/videos/999999/"),
        "not_authenticated": client.post(comments, {"text": "x"}, content_type="application/json"),
    }
    Ban.objects.create(user=alice, video=video, expires_at=timezone.now() + timedelta(hours=1))
    answers["banned"] = alice_client.post(comments, {"text": "timed out"}, format="json")
    Ban.objects.filter(user=alice).update(expires_at=None)
    answers["banned "] = alice_client.post(comments, {"text": "banned for good"}, format="json")
    for code, r in answers.items():
        body = r.json()
        assert body["error"]["code"] == code.strip(), (code, body)
        assert r.status_code >= 400
        validator.validate(body)
    assert answers["banned"].json()["error"]["retry_after"] >= 1
    assert answers["banned "].json()["error"]["ends_at"] is None
    # The check can fail: a code outside the table does not validate.
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"error": {"code": "not_a_code", "message": "x"}})
