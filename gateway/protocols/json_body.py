"""Parse a request body as one JSON object, for every entrance.

Nesting is bounded (``MAX_DEPTH``): orjson reads up to 1,024 levels but writes only 254, and the body
is written again on its way upstream and into the cache key, so a body between the two would pass
validation and fail later as a 500. No real request nests anywhere near the bound (tool schemas run
10-20 levels deep). The bound is checked with a cheap necessary condition first: a body with fewer
opening brackets than the bound cannot nest that deep, so most bodies are never walked.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.errors import InvalidRequest

MAX_DEPTH = 64


def parse_json_object(raw: bytes, *, what: str = "The OpenAI API") -> dict[str, Any]:
    if not raw:
        raise InvalidRequest("We could not parse the JSON body of your request: the body is empty.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
            f"library correctly. {what} expects a JSON payload.) Parser said: {exc.msg} at position {exc.pos}."
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, not {kind_of(body)}.")
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _deeper_than(body, MAX_DEPTH):
        raise InvalidRequest(f"The request body is nested more than {MAX_DEPTH} levels deep.", code="invalid_value")
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def kind_of(value: Any) -> str:
    """How an error message names a JSON value's type."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
