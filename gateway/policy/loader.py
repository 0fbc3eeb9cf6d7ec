"""Load a policy file: YAML → environment interpolation → typed ``Policy``, with errors at file:line:column.

Errors are collected, not raised one by one, so ``gateway policy check`` shows every problem at once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.policy.models import Policy
from gateway.policy.prices import resolve_prices, unpriced

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_DOTTED_PATH = re.compile(r"^([\w.\-]+): (.*)$")

Location = tuple[int, int]
PathKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class PolicyError(Exception):
    """A policy file that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    policy: Policy
    path: str
    version: str
    """Short content hash: identifies the active policy in headers, metrics and logs."""


def load_policy(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedPolicy:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([PolicyIssue(file, 0, 0, f"cannot read policy file: {exc.strerror or exc}")]) from exc
    return parse_policy(text, file, os.environ if env is None else env)


def parse_policy(text: str, file: str = "<policy>", env: Mapping[str, str] | None = None) -> LoadedPolicy:
    env = os.environ if env is None else env
    issues: list[PolicyIssue] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise PolicyError([PolicyIssue(file, line, col, f"YAML syntax: {exc.problem or exc}")]) from exc
    if node is None or not isinstance(node, yaml.MappingNode):
        raise PolicyError([PolicyIssue(file, 1, 1, "a policy must be a YAML mapping with `deployments` and `models`")])
    locations: dict[PathKey, Location] = {}
    data = _construct(node, (), locations, issues, file, env)
    if issues:
        raise PolicyError(issues)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_issues_from_validation(exc, file, locations)) from None
    unknown = [
        _issue_at(file, locations, ("deployments", name), f"vendor model {policy.deployments[name].model!r} has no "
                  "price in the policy nor in the price map: set price.input_per_mtok and price.output_per_mtok",
                  ("deployments", name))
        for name in unpriced(policy)
    ]
    if unknown:
        raise PolicyError(unknown)
    policy = resolve_prices(policy)
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    return LoadedPolicy(policy=policy, path=file, version=version)


def _construct(
    node: yaml.Node, path: PathKey, locations: dict[PathKey, Location], issues: list[PolicyIssue], file: str,
    env: Mapping[str, str],
) -> Any:
    locations[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(b"").construct_object(key_node)  # scalars only; cheap
            if key in result:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                issues.append(PolicyIssue(file, line, col, f"duplicate key {key!r}"))
                continue
            child = (*path, str(key))
            locations[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _construct(value_node, child, locations, issues, file, env)
            locations[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, str(i)), locations, issues, file, env) for i, item in enumerate(node.value)]
    value = yaml.SafeLoader(b"").construct_object(node)
    if isinstance(value, str) and "${" in value:
        return _interpolate(value, node, issues, file, env)
    return value


def _interpolate(value: str, node: yaml.Node, issues: list[PolicyIssue], file: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        issues.append(PolicyIssue(file, line, col, f"environment variable {name} is not set (write ${{{name}:-}} to allow it to be empty)"))
        return ""

    return _ENV_REF.sub(replace, value)


def _issues_from_validation(exc: ValidationError, file: str, locations: dict[PathKey, Location]) -> list[PolicyIssue]:
    issues = []
    for error in exc.errors():
        loc = tuple(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        if not loc and "; " in message or _DOTTED_PATH.match(message):
            # Cross-reference errors carry their own dotted paths, one per problem.
            for part in message.split("; "):
                m = _DOTTED_PATH.match(part)
                sub = tuple(m.group(1).split(".")) if m else ()
                issues.append(_issue_at(file, locations, loc + sub, m.group(2) if m else part, sub))
            continue
        issues.append(_issue_at(file, locations, loc, message, loc))
    return sorted(issues, key=lambda i: (i.line, i.column))


def _issue_at(file: str, locations: dict[PathKey, Location], loc: PathKey, message: str, shown: PathKey) -> PolicyIssue:
    # Pydantic adds union-branch names (e.g. "str", "dict[str,float]") to loc; walk back to a known path.
    probe = loc
    while probe and probe not in locations:
        probe = probe[:-1]
    line, col = locations.get(probe, (1, 1))
    where = ".".join(p for p in shown if p in _path_parts(locations)) or "policy"
    return PolicyIssue(file, line, col, f"{where}: {message}")


def _path_parts(locations: dict[PathKey, Location]) -> set[str]:
    return {p for path in locations for p in path}
