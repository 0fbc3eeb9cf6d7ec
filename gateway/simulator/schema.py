"""Plausible example values for a JSON schema (tool arguments, structured outputs).

Covers what tool and ``response_format`` schemas use in practice: types (also Gemini's upper-case
OpenAPI names), ``enum``/``const``/``default``/``examples``, objects, arrays with ``minItems``,
numeric and length bounds, common string formats, ``$ref`` to ``$defs``/``definitions``,
``anyOf``/``oneOf``/``allOf``. Every property is filled (deeper than a few levels only the required
ones, so recursive schemas end), so the value satisfies ``required`` and, for the shapes above,
validates.
"""

from __future__ import annotations

from typing import Any

_MAX_DEPTH = 16
_ALL_PROPERTIES_DEPTH = 6
_MINIMAL: dict[str, Any] = {
    "object": {},
    "array": [],
    "string": "",
    "integer": 0,
    "number": 0.0,
    "boolean": False,
}

_FORMATS = {
    "date": "2024-05-17",
    "date-time": "2024-05-17T12:00:00Z",
    "time": "12:00:00",
    "email": "ada@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
}

# Property-name hints for friendlier values; matched on the lower-cased name.
_NAMED_STRINGS = (
    ("city", "Paris"),
    ("location", "Paris, France"),
    ("country", "France"),
    ("email", "ada@example.com"),
    ("url", "https://example.com/"),
    ("name", "Ada Lovelace"),
    ("unit", "celsius"),
    ("query", "simulated query"),
    ("language", "en"),
    ("date", "2024-05-17"),
    ("id", "id_123"),
)


def example_value(schema: Any, name: str = "", *, root: Any = None, depth: int = 0) -> Any:
    """A value that fits ``schema``; ``name`` is the property name, used to pick friendlier strings."""
    if depth > _MAX_DEPTH:
        return _MINIMAL.get(_type_of(schema))
    if not isinstance(schema, dict):
        return "example"  # ``true`` or a missing schema: anything goes
    root = schema if root is None else root
    if "$ref" in schema:
        return example_value(_resolve(root, schema["$ref"]), name, root=root, depth=depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            options = [s for s in schema[key] if _type_of(s) != "null"] or schema[key]
            return example_value(options[0], name, root=root, depth=depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = example_value(part, name, root=root, depth=depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    return _typed_value(schema, _type_of(schema), name, root, depth)


def _typed_value(schema: dict[str, Any], type_: str, name: str, root: Any, depth: int) -> Any:
    if type_ == "object":
        properties = schema.get("properties") or {}
        if depth >= _ALL_PROPERTIES_DEPTH:  # deeper down, only what is required: ends recursive schemas
            required = set(schema.get("required") or ())
            properties = {prop: sub for prop, sub in properties.items() if prop in required}
        return {
            prop: example_value(sub, prop, root=root, depth=depth + 1) for prop, sub in properties.items()
        }
    if type_ == "array":
        count = max(1, int(schema.get("minItems", 1)))
        count = min(count, int(schema.get("maxItems", count)))
        items = schema.get("items") or {}
        return [example_value(items, name, root=root, depth=depth + 1) for _ in range(count)]
    if type_ in ("integer", "number"):
        return _number(schema, integer=type_ == "integer")
    if type_ == "boolean":
        return True
    if type_ == "null":
        return None
    return _string(schema, name)


def _type_of(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "string"
    type_ = schema.get("type")
    if isinstance(type_, list):
        non_null = [t for t in type_ if str(t).lower() != "null"]
        type_ = non_null[0] if non_null else "null"
    if type_ is None:
        if "properties" in schema:
            return "object"
        if "items" in schema:
            return "array"
        return "string"
    return str(type_).lower()


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1
    if isinstance(low, int | float):
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, int | float) and value > high:
        value = high
    return int(value) if integer else float(value)


def _string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    if fmt in _FORMATS:
        return _FORMATS[fmt]
    lowered = name.lower()
    text = next((value for hint, value in _NAMED_STRINGS if hint in lowered), "example")
    min_len = int(schema.get("minLength", 0))
    max_len = schema.get("maxLength")
    if len(text) < min_len:
        text = text + "x" * (min_len - len(text))
    if isinstance(max_len, int):
        text = text[:max_len]
    return text


def _resolve(root: Any, ref: str) -> Any:
    if not ref.startswith("#/"):
        return {}
    node = root
    for part in ref[2:].split("/"):
        if not isinstance(node, dict):
            return {}
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node if node is not None else {}
