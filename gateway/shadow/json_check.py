"""Is an answer the JSON the request asked for? Parsed as the client would parse it, then validated
against the request's ``json_schema`` with ``jsonschema`` (the schema's own draft, default 2020-12).

The schema and the answer both come from outside (the client's request, the model's text), and this runs
in the gateway's process, so the check is bounded: a ``pattern`` is matched with the ``regex`` engine
under a time limit instead of ``re`` (a pattern written to backtrack for hours would otherwise hold the
process), a schema using ``patternProperties`` (whose keys ``jsonschema`` matches with ``re``) is not
checked at all, nor is one ``jsonschema`` cannot use (invalid, or a ``$ref`` it cannot resolve: it never
fetches one over the network). Not checked means ``valid is None``: unknown, never a guess.

An answer wrapped in a Markdown code fence is not valid JSON: a client calling ``json.loads`` on it
would fail too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import regex
from jsonschema import ValidationError, validators
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

_PATTERN_SECONDS = 0.05
_NOT_PARSED = object()


class _Unchecked(Exception):
    """The schema cannot be checked within the bounds above."""


@dataclass(frozen=True, slots=True)
class JsonVerdict:
    parsed: bool
    valid: bool | None
    """Parsed and, with a schema, valid against it; ``None`` when the schema could not be checked."""
    value: Any = None


def _bounded_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        found = regex.search(pattern, instance, timeout=_PATTERN_SECONDS)
    except TimeoutError as exc:
        raise _Unchecked("pattern took too long") from exc
    except regex.error as exc:
        raise _Unchecked("pattern the regex engine does not take") from exc
    if found is None:
        yield ValidationError(f"does not match {pattern!r}")


def check_json(text: str, schema: dict[str, Any] | None) -> JsonVerdict:
    """The verdict on ``text`` as a JSON answer; ``schema`` is the request's ``json_schema`` (``None``: JSON mode)."""
    value = parse_json(text)
    if value is _NOT_PARSED:
        return JsonVerdict(False, False)
    if schema is None:
        return JsonVerdict(True, True, value)
    return JsonVerdict(True, _valid(value, schema), value)


def parse_json(text: str) -> Any:
    """The JSON value of ``text``, or ``_NOT_PARSED``. orjson first; Python's parser for what orjson refuses
    but JSON allows (integers beyond 64 bits), never NaN or Infinity (which JSON does not allow)."""
    try:
        return orjson.loads(text.strip() or b"!")
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return _NOT_PARSED


def is_parsed(value: Any) -> bool:
    return value is not _NOT_PARSED


def canonical_json(value: Any) -> str:
    """One spelling per JSON value: keys sorted, no spaces, ``1.0`` written ``1`` (the same number in JSON),
    ``true`` never equal to ``1`` (Python's ``==`` would say it is)."""
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _valid(value: Any, schema: dict[str, Any]) -> bool | None:
    try:
        if _mentions(schema, "patternProperties"):
            return None
        base = validators.validator_for(schema)
        base.check_schema(schema)
        bounded = validators.extend(base, {"pattern": _bounded_pattern})  # type: ignore[no-untyped-call]
        return next(iter(bounded(schema).iter_errors(value)), None) is None
    except (_Unchecked, SchemaError, Unresolvable, RecursionError):
        return None


def _mentions(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(_mentions(v, key) for v in node.values())
    if isinstance(node, list):
        return any(_mentions(v, key) for v in node)
    return False
