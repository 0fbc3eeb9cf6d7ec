"""Load a policy file: YAML → environment interpolation → typed ``Policy``, with errors at file:line:column.

Every problem is collected before anything is raised, so ``gateway policy check`` shows them all in
one run: YAML syntax (PyYAML stops at the first), unset environment variables, schema errors (in the
author's words, ``schema_errors``) and unresolved names (``references``) — each at its place.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.policy.models import Policy
from gateway.policy.prices import resolve_prices, unpriced
from gateway.policy.references import Finding, check_references
from gateway.policy.schema_errors import schema_issues
from gateway.policy.yaml_errors import yaml_problem

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")

Location = tuple[int, int]
PathKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    file: str
    line: int
    column: int
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"


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
    locations: Mapping[PathKey, Location] = field(default_factory=dict, compare=False, repr=False)
    """Where each key and list item of the document starts, for messages about a valid policy."""

    def issue(self, path: PathKey, message: str, severity: str = "warning") -> PolicyIssue:
        line, column = locate(self.locations, path)
        return PolicyIssue(self.path, line, column, message, severity)


@dataclass(frozen=True, slots=True)
class Inspection:
    """Everything known about one policy file: the policy when it is usable, and every issue."""

    loaded: LoadedPolicy | None
    issues: list[PolicyIssue]

    @property
    def errors(self) -> list[PolicyIssue]:
        return [i for i in self.issues if i.severity == "error"]


def load_policy(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LoadedPolicy:
    return _usable(inspect_file(path, env))


def parse_policy(text: str, file: str = "<policy>", env: Mapping[str, str] | None = None) -> LoadedPolicy:
    return _usable(inspect_policy(text, file, env))


def inspect_file(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Inspection:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return Inspection(None, [PolicyIssue(file, 0, 0, f"cannot read policy file: {exc.strerror or exc}")])
    except UnicodeDecodeError as exc:
        return Inspection(None, [PolicyIssue(file, 0, 0, f"not a UTF-8 text file ({exc.reason} at byte {exc.start})")])
    return inspect_policy(text, file, os.environ if env is None else env)


def inspect_policy(text: str, file: str = "<policy>", env: Mapping[str, str] | None = None) -> Inspection:
    """Read, interpolate, validate and resolve ``text``; never raises for a problem in the document."""
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line, col, message = yaml_problem(exc)
        return Inspection(None, [PolicyIssue(file, line, col, message)])
    if node is None or not isinstance(node, yaml.MappingNode):
        return Inspection(None, [PolicyIssue(file, 1, 1, "a policy must be a YAML mapping with `deployments` and `models`")])
    issues: list[PolicyIssue] = []
    locations: dict[PathKey, Location] = {}
    unset: set[PathKey] = set()
    data = _construct(node, (), _Reading(locations, issues, unset, file, env))
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        # A value left empty by an unset variable is already reported as that; its schema error would repeat it.
        problems = [(path, message) for path, message in schema_issues(exc, Policy, _splitter(locations))
                    if path not in unset]
    else:
        # Money fails closed: a vendor deployment priced neither by the policy nor by the price map.
        problems = [(("deployments", name), f"vendor model {policy.deployments[name].model!r} has no complete price in "
                     "the policy nor in the price map: set price.input_per_mtok and price.output_per_mtok")
                    for name in unpriced(policy)]
        policy = resolve_prices(policy)
    findings = [f for f in check_references(data) if f.path not in unset]
    # The document-level validator and ``references`` may name the same problem; the latter says it better.
    resolved = [f.path for f in findings]
    problems = [(path, message) for path, message in problems
                if not any(p[:len(path)] == path for p in resolved) or not path]
    issues += [_issue_at(file, locations, path, message) for path, message in problems]
    issues += [_finding_at(file, locations, f) for f in findings]
    issues = sorted(set(issues), key=lambda i: (i.line, i.column, i.severity, i.message))
    loaded = None
    if policy is not None and not any(i.severity == "error" for i in issues):
        loaded = LoadedPolicy(policy, file, hashlib.sha256(text.encode()).hexdigest()[:12], locations)
    return Inspection(loaded, issues)


def _splitter(locations: Mapping[PathKey, Location]) -> Callable[[str], PathKey]:
    """``models.qwen2.5-7b.aliases.0`` → the document path it names (a name may contain dots)."""
    by_text = {".".join(path): path for path in locations}

    def split(dotted: str) -> PathKey:
        return by_text.get(dotted) or tuple(dotted.split("."))

    return split


def locate(locations: Mapping[PathKey, Location], path: PathKey) -> Location:
    """The place of ``path``, or of its nearest ancestor the document has (a missing key: its parent)."""
    probe = path
    while probe and probe not in locations:
        probe = probe[:-1]
    return locations.get(probe, (1, 1))


def _usable(inspection: Inspection) -> LoadedPolicy:
    if inspection.loaded is None:
        raise PolicyError(inspection.errors)
    return inspection.loaded


@dataclass(slots=True)
class _Reading:
    locations: dict[PathKey, Location]
    issues: list[PolicyIssue]
    unset: set[PathKey]
    """Paths whose value used an unset environment variable."""
    file: str
    env: Mapping[str, str]


def _construct(node: yaml.Node, path: PathKey, reading: _Reading) -> Any:
    locations = reading.locations
    locations[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.SafeLoader(b"").construct_object(key_node)  # scalars only; cheap
            here = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                reading.issues.append(PolicyIssue(reading.file, *here, f"duplicate key {key!r}"))
                continue
            child = (*path, str(key))
            result[key] = _construct(value_node, child, reading)
            locations[child] = here  # a key's place is where the key is written, not its value
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, str(i)), reading) for i, item in enumerate(node.value)]
    value = yaml.SafeLoader(b"").construct_object(node)
    if isinstance(value, str) and "${" in value:
        return _interpolate(value, node, path, reading)
    return value


def _interpolate(value: str, node: yaml.Node, path: PathKey, reading: _Reading) -> str:
    env = reading.env

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        reading.issues.append(PolicyIssue(
            reading.file, line, col, f"environment variable {name} is not set (write ${{{name}:-}} to allow it to be empty)"))
        reading.unset.add(path)
        return ""

    return _ENV_REF.sub(replace, value)


def _issue_at(file: str, locations: Mapping[PathKey, Location], path: PathKey, message: str) -> PolicyIssue:
    line, col = locate(locations, path)
    where = ".".join(path) or "policy"
    return PolicyIssue(file, line, col, f"{where}: {message}")


def _finding_at(file: str, locations: Mapping[PathKey, Location], finding: Finding) -> PolicyIssue:
    issue = _issue_at(file, locations, finding.path, finding.message)
    return PolicyIssue(issue.file, issue.line, issue.column, issue.message, finding.severity)
