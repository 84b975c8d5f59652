"""JSON Schema (draft 7, the dialect AsyncAPI 3 and OpenAPI 3.0 share) from a TypedDict.

Enough for the payload definitions the code uses: str, int, float, bool, None,
object (any JSON value), Literal[...] (an enum), X | None, list[X], dict[str, X] and nested TypedDicts
(required keys from `total` / Required / NotRequired; inheritance included).
Objects are closed (additionalProperties: false): a field the type does not
declare is drift, and validating a payload against the schema says so. The
class docstring becomes the description. Anything else raises TypeError, so
a new kind of field is added here rather than silently typed as "anything".
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}


def typed_dict_schema(cls: type, ref=None) -> dict[str, Any]:
    """The schema of TypedDict `cls`. `ref(nested_cls) -> dict | None` may
    replace a nested TypedDict by a reference (e.g. {"$ref": ...})."""
    if not is_typeddict(cls):
        raise TypeError(f"{cls!r} is not a TypedDict")
    hints = get_type_hints(cls, include_extras=True)
    # __required_keys__ misses NotRequired[...] written as a string (`from __future__ import annotations`)
    required = {
        name
        for name, hint in hints.items()
        if get_origin(hint) is typing.Required
        or (get_origin(hint) is not typing.NotRequired and name in cls.__required_keys__)  # type: ignore[attr-defined]
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: type_schema(hint, ref) for name, hint in hints.items()},
        "required": [name for name in hints if name in required],
        "additionalProperties": False,
    }
    if not schema["required"]:
        del schema["required"]
    doc = inspect.getdoc(cls)
    if doc and cls.__doc__ is not None and "__doc__" in cls.__dict__:
        schema["description"] = doc
    return schema


def type_schema(hint: Any, ref=None) -> dict[str, Any]:
    """The schema of one annotation."""
    if hint in _SCALARS:
        return dict(_SCALARS[hint])
    if hint is object or hint is Any:  # any JSON value
        return {}
    if is_typeddict(hint):
        replaced = ref(hint) if ref is not None else None
        return replaced if replaced is not None else typed_dict_schema(hint, ref)
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Required, typing.NotRequired):
        return type_schema(args[0], ref)
    if origin is Literal:
        kinds = {type(a) for a in args}
        if len(kinds) != 1 or next(iter(kinds)) not in _SCALARS:
            raise TypeError(f"a Literal of one scalar type only: {hint!r}")
        return {**_SCALARS[next(iter(kinds))], "enum": list(args)}
    if origin in (Union, types.UnionType):
        return {"oneOf": [type_schema(arg, ref) for arg in args]}
    if origin is list:
        return {"type": "array", "items": type_schema(args[0], ref)}
    if origin is dict and args and args[0] is str:
        return {"type": "object", "additionalProperties": type_schema(args[1], ref)}
    raise TypeError(f"no JSON Schema for {hint!r}")
