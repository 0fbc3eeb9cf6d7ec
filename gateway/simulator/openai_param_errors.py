"""OpenAI's wording for a request parameter it rejects: missing, wrong type, unsupported value.

Each returns the ``BadRequest`` (400, ``invalid_request_error``) with OpenAI's ``param`` and ``code``,
so a client sees the simulator refuse a request exactly as the vendor words it.
"""

from __future__ import annotations

from typing import Any

from gateway.simulator.wire import BadRequest


def missing(param: str) -> BadRequest:
    return BadRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def invalid_type(param: str, expected: str, got: Any) -> BadRequest:
    return BadRequest(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(got)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, got: Any, supported: tuple[str, ...]) -> BadRequest:
    head = ", ".join(f"'{s}'" for s in supported[:-1])
    listed = f"{head}{',' if len(supported) > 2 else ''} and '{supported[-1]}'"
    return BadRequest(
        f"Invalid value: '{got}'. Supported values are: {listed}.", param=param, code="invalid_value"
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
