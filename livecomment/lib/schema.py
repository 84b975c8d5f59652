"""drf-spectacular hooks: what the OpenAPI document says beyond the serializers."""

from __future__ import annotations

import copy


def strict_request_bodies(result, generator, request, public):
    """Every request body is a closed object (additionalProperties: false):
    the API refuses fields it does not know (livecomment.lib.parsers.strict_body)."""
    components = result.get("components", {}).get("schemas", {})
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for media in operation.get("requestBody", {}).get("content", {}).values():
                schema = media.get("schema", {})
                ref = schema.get("$ref", "")
                target = components.get(ref.rpartition("/")[2]) if ref else schema
                if target is not None and target.get("type", "object") == "object":
                    target["additionalProperties"] = False
    return result


_RETRY_AFTER = {
    "description": "Seconds to wait before trying again (the body's retry_after says the same on 429).",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
_ADDED = {
    "405": "This path does not take this method (its Allow header lists the ones it does): method_not_allowed.",
    "415": "The body is not application/json: unsupported_media_type.",
    "429": "Too many requests (throttled, slow_mode, too_many_*): wait Retry-After seconds.",
    "503": "The database or Redis is down (*_unavailable); nothing was saved: retry after Retry-After seconds.",
}


def declared_statuses(result, generator, request, public):
    """The answers every operation can give whatever its view declares:
    405 (a method the path does not take), 429 (every view is throttled),
    503 (an outage, livecomment.lib.errors._outage), 415 where there is a body
    to be of the wrong type; `Retry-After` on every 429 and 503. An operation
    that declares no security (sign-in) gets `security: []`."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            wanted = {"405", "429", "503"} | ({"415"} if "requestBody" in operation else set())
            if "requestBody" not in operation:
                responses.pop("415", None)
            for status in sorted(wanted):
                responses.setdefault(status, {"description": "", "content": copy.deepcopy(error)})
                if not responses[status].get("description"):
                    responses[status]["description"] = _ADDED[status]
            for status in ("429", "503"):
                responses[status].setdefault("headers", {})["Retry-After"] = copy.deepcopy(_RETRY_AFTER)
            operation["responses"] = dict(sorted(responses.items()))
            # No authenticator applies (sign-in): say "no credentials" rather than nothing.
            operation.setdefault("security", [])
    return result
