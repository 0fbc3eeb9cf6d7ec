"""Pydantic's validation errors, said in a policy author's words.

Pydantic reports ``Input should be a valid dictionary or instance of Team`` where the author needs
"nothing is indented under `teams.payments`". Each error becomes (path in the document, message):
unknown keys and mistyped values get "did you mean", type errors say what was found instead and,
when the key looks like a setting of the entry above, that it is probably indented too little.
Errors pydantic raises once per branch of a union (``objective: fastest``) are merged into one.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.policy.suggestions import did_you_mean

PathKey = tuple[str, ...]

_QUOTED = re.compile(r"'([^']*)'")
_KINDS = {
    "dict_type": "a mapping (`key: value` lines indented under it)",
    "model_type": "a mapping (`key: value` lines indented under it)",
    "model_attributes_type": "a mapping (`key: value` lines indented under it)",
    "list_type": "a list (`[a, b]` or `- item` lines)",
    "tuple_type": "a list (`[a, b]` or `- item` lines)",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}
_BOUNDS = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "too_short": "must have at least {min_length} entr{plural}",
}


def schema_issues(exc: ValidationError, root: type[BaseModel],
                  split: Callable[[str], PathKey] = lambda text: tuple(text.split("."))) -> list[tuple[PathKey, str]]:
    """One (path, message) per problem, paths as in the YAML document (union branch names removed).

    The whole-document validator reports several problems in one message, ``path: problem; path: problem``;
    ``split`` turns such a dotted path back into the document's path (names may contain dots).
    """
    missing: list[tuple[PathKey, str]] = []
    grouped: dict[PathKey, list[dict[str, Any]]] = {}
    for error in exc.errors():
        if error["type"] == "value_error" and not error["loc"]:
            for part in str(error["msg"]).removeprefix("Value error, ").split("; "):
                dotted, sep, problem = part.partition(": ")
                missing.append((split(dotted), problem) if sep else ((), part))
            continue
        path = _document_path(root, error["loc"])
        if error["type"] == "missing":  # reported where the key should have been: at its parent
            missing.append((path[:-1], f"the required key {path[-1]!r} is missing"))
            continue
        grouped.setdefault(path, []).append(dict(error))
    return missing + [(path, _message(root, path, errors)) for path, errors in grouped.items()]


_SECRET_FIELDS = frozenset(("api_key", "sha256", "headers"))
"""Values never repeated in a message: an error message ends up in logs."""


def _message(root: type[BaseModel], path: PathKey, errors: list[dict[str, Any]]) -> str:
    if len(errors) > 1:
        return _union_message(errors)
    error = errors[0]
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if _SECRET_FIELDS & set(path) and kind not in ("extra_forbidden", "missing"):
        value = _Redacted(value)
    if kind == "extra_forbidden":
        known = _field_names(_annotation_at(root, path[:-1]))
        return f"unknown key {path[-1]!r}{did_you_mean(path[-1], known)}"
    if kind == "literal_error":
        allowed = _QUOTED.findall(ctx.get("expected", ""))
        got = str(value)
        return f"{got!r} is not one of {', '.join(allowed)}{did_you_mean(got, allowed)}"
    if kind in _KINDS:
        return _wrong_kind(root, path, _KINDS[kind], value)
    if kind in _BOUNDS:
        bound = dict(ctx)
        bound["plural"] = "y" if bound.get("min_length") == 1 else "ies"
        return _BOUNDS[kind].format(**bound) + f" (got {_shown(value)})"
    if kind == "string_pattern_mismatch" and path[-1] == "sha256":
        return "must be 64 hex digits: the SHA-256 of the key (`gateway keys hash`), never the key itself"
    return str(error["msg"]).removeprefix("Value error, ")


def _union_message(errors: list[dict[str, Any]]) -> str:
    """``objective: fastest`` fails the literal and the mapping branch: say both options in one line."""
    options: list[str] = []
    value = errors[0].get("input")
    for error in errors:
        if error["type"] == "literal_error":
            options += _QUOTED.findall((error.get("ctx") or {}).get("expected", ""))
        elif error["type"] in _KINDS:
            options.append(_KINDS[error["type"]])
    if not options:
        return "; ".join(dict.fromkeys(str(e["msg"]) for e in errors))
    words = [o for o in dict.fromkeys(options) if " " not in o]
    kinds = [o for o in dict.fromkeys(options) if " " in o]
    hint = did_you_mean(str(value), words) if words else ""
    expected = ", ".join(words) + (", or " if words and kinds else "") + " or ".join(kinds)
    return f"{_shown(value)} is not valid here: expected one of {expected}{hint}"


class _Redacted:
    """A secret's value, shown only by its kind."""

    def __init__(self, value: Any) -> None:
        self.kind = type(value)

    def __repr__(self) -> str:
        return "a number (not shown)" if self.kind in (int, float) else "a value (not shown)"


def _wrong_kind(root: type[BaseModel], path: PathKey, wanted: str, value: Any) -> str:
    message = f"should be {wanted}, but is {_shown(value)}"
    if wanted == "text" and isinstance(value, int | float | bool | _Redacted):
        # YAML reads 12345, 1e3, `no` and `on` as numbers and booleans: quoting keeps them text.
        return message + " — put it in quotes"
    if value is None and "mapping" in wanted:
        return message + ": nothing is indented under it"
    parent = _annotation_at(root, path[:-1])
    entry = _dict_value_model(parent)
    if entry is not None and path[-1] in _field_names(entry):
        # `data_class:` under `teams:` instead of under `teams.payments:`: a setting, indented too little.
        return message + f" — {path[-1]!r} is a setting of one entry: is it indented too little?"
    return message


def _shown(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the text {value[:60]!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{value!r}"


def _document_path(root: type[BaseModel], loc: tuple[Any, ...]) -> PathKey:
    """``loc`` without the union-branch names pydantic inserts (``literal['cost',...]``, ``dict[str,float]``)."""
    path: list[str] = []
    annotation: Any = root
    for part in loc:
        step = _step(annotation, str(part))
        if step is _NO_STEP:
            continue  # a branch label, not part of the document
        path.append(str(part))
        annotation = step
    return tuple(path)


_NO_STEP = object()


def _step(annotation: Any, part: str) -> Any:
    """The annotation one level down at ``part``; ``_NO_STEP`` for a union-branch label."""
    if _is_branch_label(part):
        return _NO_STEP
    for candidate in _unwrapped(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            for name, field in candidate.model_fields.items():
                if part in (name, field.alias):
                    return field.annotation
            continue
        origin, args = typing.get_origin(candidate), typing.get_args(candidate)
        if origin is dict and len(args) == 2:
            return args[1]
        if origin in (tuple, list) and args and part.isdigit():
            return args[0]
    return Any  # an unknown key (extra_forbidden names it), or deeper than the models describe


def _is_branch_label(part: str) -> bool:
    return "[" in part or part in ("str", "int", "float", "bool", "dict", "list", "tuple") or part.startswith(
        ("function-", "literal", "lax-", "strict-", "json-or-python", "chain")
    )


def _unwrapped(annotation: Any) -> Iterator[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _unwrapped(arg)
    elif origin is typing.Annotated:
        yield from _unwrapped(typing.get_args(annotation)[0])
    else:
        yield annotation


def _annotation_at(root: type[BaseModel], path: PathKey) -> Any:
    annotation: Any = root
    for part in path:
        step = _step(annotation, part)
        if step is not _NO_STEP:
            annotation = step
    return annotation


def _field_names(annotation: Any) -> list[str]:
    for candidate in _unwrapped(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return [field.alias or name for name, field in candidate.model_fields.items()]
    return []


def _dict_value_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in _unwrapped(annotation):
        args = typing.get_args(candidate)
        if typing.get_origin(candidate) is dict and len(args) == 2:
            for inner in _unwrapped(args[1]):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    return inner
    return None
