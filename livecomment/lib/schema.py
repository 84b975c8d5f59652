"""drf-spectacular hooks: what the OpenAPI document says beyond the serializers."""

from __future__ import annotations


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
