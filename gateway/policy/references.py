"""Resolve every name a policy mentions: deployments, models, teams, key names, rules, origins, regions.

Runs on the document as read (plain dicts and lists), not on the validated ``Policy``, so a schema
error elsewhere does not hide a misspelt team: ``gateway policy check`` reports both in one run.
Names compare the way routing compares them: deployment, model, team, key and rule names exactly
(a difference in case is an error, with the intended name suggested); ``origin`` and ``region``
values without regard to case (``routing.conditions.unmet_requirement`` folds case too).

A value of ``require.origin``/``require.region`` that no deployment has is an error when it is close
to one that exists (``CNN`` for ``CN``) and a warning otherwise: barring an origin no deployment has
yet is a legitimate precaution.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from gateway.policy.suggestions import closest, did_you_mean

PathKey = tuple[str, ...]
Severity = Literal["error", "warning", "note"]
"""error: the policy cannot be used; warning: it can, but probably not as meant; note: worth knowing."""

BUILTIN_TEAM = "default"
BUILTIN_KEYS = ("anonymous", "admin")
"""Key names the gateway gives callers itself: no keys in the policy, and the admin key."""
NEEDS_API_BASE = ("openai_compatible", "llamacpp")
"""Provider types without a default address (llama.cpp's own default port is the gateway's)."""


@dataclass(frozen=True, slots=True)
class Finding:
    path: PathKey
    message: str
    severity: Severity = "error"


@dataclass(frozen=True, slots=True)
class _Names:
    deployments: tuple[str, ...]
    models: tuple[str, ...]
    teams: tuple[str, ...]
    keys: tuple[str, ...]
    rules: tuple[str, ...]
    origins: tuple[str, ...]
    regions: tuple[str, ...]
    aliases: tuple[tuple[str, str], ...]
    """(alias or glob pattern, the model it names): clients may send these, rules never see them."""

    def model_of(self, name: str) -> str | None:
        """The model a client's ``model`` value reaches (its own name, an exact alias, then a pattern)."""
        if name in self.models:
            return name
        exact = [m for a, m in self.aliases if a == name and not _is_pattern(a)]
        patterns = [m for a, m in self.aliases if _is_pattern(a) and fnmatch.fnmatchcase(name, a)]
        found = exact or patterns
        return found[0] if found else None

    @classmethod
    def of(cls, data: dict[str, Any]) -> _Names:
        deployments = _mapping(data.get("deployments"))
        keys = [k.get("name") for k in _items(data.get("keys")) if isinstance(k, dict)]
        rules = [r.get("name") for r in _items(data.get("rules")) if isinstance(r, dict)]
        return cls(
            deployments=tuple(deployments),
            models=tuple(_mapping(data.get("models"))),
            teams=(*_mapping(data.get("teams")), BUILTIN_TEAM),
            keys=(*(str(k) for k in keys if isinstance(k, str)), *BUILTIN_KEYS),
            rules=tuple(str(r) for r in rules if isinstance(r, str)),
            origins=tuple(str(_mapping(d).get("origin", "unknown")) for d in deployments.values()),
            regions=tuple(str(_mapping(d).get("region", "unknown")) for d in deployments.values()),
            aliases=tuple((str(a), str(m)) for m, route in _mapping(data.get("models")).items()
                          for a in _items(_mapping(route).get("aliases")) if isinstance(a, str)),
        )


def check_references(data: dict[str, Any]) -> list[Finding]:
    names = _Names.of(data)
    findings: list[Finding] = []
    findings += _deployment_findings(data)
    findings += _model_findings(data, names)
    findings += _team_and_key_findings(data, names)
    for i, rule in enumerate(_items(data.get("rules"))):
        if isinstance(rule, dict):
            findings += _rule_findings(("rules", str(i)), rule, names)
    findings += _duplicates(("rules",), _items(data.get("rules")), "name", "rule name")
    for i, case in enumerate(_items(data.get("tests"))):
        if isinstance(case, dict):
            findings += _case_findings(("tests", str(i)), case, names)
    reference = data.get("reference_model")
    if isinstance(reference, str):
        findings += _resolve(("reference_model",), reference, names.deployments, "deployment")
    embedder = _mapping(_mapping(data.get("defaults")).get("shadow")).get("embedding_deployment")
    if isinstance(embedder, str):
        findings += _resolve(("defaults", "shadow", "embedding_deployment"), embedder, names.deployments, "deployment")
    return findings


def _deployment_findings(data: dict[str, Any]) -> Iterator[Finding]:
    for name, dep in _mapping(data.get("deployments")).items():
        if isinstance(dep, dict) and dep.get("type") in NEEDS_API_BASE and not dep.get("api_base"):
            field = "api_base" if "api_base" in dep else "type"
            yield Finding(("deployments", str(name), field),
                          f"type {dep['type']} has no default address: set `api_base` (the server's URL including /v1)")


def _model_findings(data: dict[str, Any], names: _Names) -> Iterator[Finding]:
    for alias, route in _mapping(data.get("models")).items():
        for i, dep in enumerate(_items(_mapping(route).get("deployments"))):
            yield from _resolve(("models", str(alias), "deployments", str(i)), dep, names.deployments, "deployment")
        shadow = _mapping(_mapping(route).get("shadow")).get("deployment")
        yield from _resolve(("models", str(alias), "shadow", "deployment"), shadow, names.deployments, "deployment")


def _team_and_key_findings(data: dict[str, Any], names: _Names) -> Iterator[Finding]:
    for team, settings in _mapping(data.get("teams")).items():
        for i, model in enumerate(_items(_mapping(settings).get("models"))):
            yield from _resolve_model(("teams", str(team), "models", str(i)), model, names)
    keys = _items(data.get("keys"))
    for i, key in enumerate(keys):
        if isinstance(key, dict) and "team" in key:
            yield from _resolve(("keys", str(i), "team"), key["team"], names.teams, "team")
    yield from _duplicates(("keys",), keys, "name", "key name")
    yield from _duplicates(("keys",), keys, "sha256", "key hash (one secret, two identities)", show=False)


def _rule_findings(path: PathKey, rule: dict[str, Any], names: _Names) -> Iterator[Finding]:
    when = rule.get("when")
    if isinstance(when, dict):
        yield from _condition_findings((*path, "when"), when, names)
    shadow = _mapping(rule.get("shadow")).get("deployment")
    yield from _resolve((*path, "shadow", "deployment"), shadow, names.deployments, "deployment")
    require = rule.get("require")
    if isinstance(require, dict):
        for field, known, what in (("deployments", names.deployments, "deployment"),
                                   ("origin", names.origins, "origin"), ("region", names.regions, "region")):
            membership = require.get(field)
            if not isinstance(membership, dict):
                continue
            for side in ("in", "not_in"):
                for j, value in enumerate(_one_or_many(membership.get(side))):
                    where = (*path, "require", field, side, str(j))
                    if field == "deployments":
                        yield from _resolve(where, value, known, what)
                    else:
                        yield from _resolve_value(where, value, known, what)


def _condition_findings(path: PathKey, when: dict[str, Any], names: _Names) -> Iterator[Finding]:
    for field, known, what in (("team", names.teams, "team"), ("key", names.keys, "key name"),
                               ("model", names.models, "model")):
        values = when.get(field)
        for j, value in enumerate(_one_or_many(values)):
            where = (*path, field) if isinstance(values, str) else (*path, field, str(j))
            if field == "model":
                yield from _resolve_model(where, value, names)
            else:
                yield from _resolve(where, value, known, what)
    for combinator in ("all", "any"):
        for j, nested in enumerate(_items(when.get(combinator))):
            if isinstance(nested, dict):
                yield from _condition_findings((*path, combinator, str(j)), nested, names)
    if isinstance(when.get("not"), dict):
        yield from _condition_findings((*path, "not"), when["not"], names)


def _case_findings(path: PathKey, case: dict[str, Any], names: _Names) -> Iterator[Finding]:
    for field, known, what in (("team", names.teams, "team"), ("key", names.keys, "key name"),
                               ("expect_deployment", names.deployments, "deployment"),
                               ("expect_rule", (*names.rules, "default"), "rule")):
        if isinstance(case.get(field), str):
            yield from _resolve((*path, field), case[field], known, what)
    for j, target in enumerate(_items(case.get("expect_targets"))):
        yield from _resolve((*path, "expect_targets", str(j)), target, names.deployments, "deployment")
    request = case.get("request")
    model = request.get("model") if isinstance(request, dict) else None
    if isinstance(model, str) and names.model_of(model) is None:  # a client may send an alias
        yield from _resolve((*path, "request", "model"), model, names.models, "model")


def _resolve_model(path: PathKey, value: Any, names: _Names) -> Iterator[Finding]:
    """A model name where the policy means the model's own name (rules, team lists), not an alias."""
    target = names.model_of(value) if isinstance(value, str) and value not in names.models else None
    if target is not None:
        yield Finding(path, f"{value!r} is an alias of the model {target!r}: rules and team lists see the model's "
                            "own name, so write that name")
    else:
        yield from _resolve(path, value, names.models, "model")


def _resolve(path: PathKey, value: Any, known: Iterable[str], what: str) -> Iterator[Finding]:
    if not isinstance(value, str):
        return  # a type error, reported by the schema
    known = tuple(known)
    if value not in known:
        yield Finding(path, f"unknown {what} {value!r}{did_you_mean(value, known) or _none_hint(known, what)}")


def _resolve_value(path: PathKey, value: Any, known: Iterable[str], what: str) -> Iterator[Finding]:
    if not isinstance(value, str):
        return
    folded = {k.casefold() for k in known}
    if value.casefold() in folded:
        return
    near = closest(value, known)
    if near is not None:
        yield Finding(path, f"no deployment has {what} {value!r} (did you mean {near!r}?)")
    else:
        yield Finding(path, f"no deployment has {what} {value!r} (they have: {', '.join(sorted(set(known)))}); "
                            "this constraint changes nothing today", "warning")


def _none_hint(known: tuple[str, ...], what: str) -> str:
    shown = [k for k in known if k not in BUILTIN_KEYS or what != "key name"]
    if not shown:
        return f" (the policy defines no {what}s)"
    if len(shown) <= 8:
        return f" (known: {', '.join(sorted(shown))})"
    return ""


def _duplicates(path: PathKey, items: list[Any], field: str, what: str, show: bool = True) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        value = item.get(field) if isinstance(item, dict) else None
        if not isinstance(value, str) or not value:
            continue  # missing or empty (an unset variable): reported where it is wrong
        if value in seen:
            shown = f" {value!r}" if show else ""
            yield Finding((*path, str(i), field), f"duplicate {what}{shown} (also at entry {seen[value]})")
        else:
            seen[value] = i


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")  # as ``models.is_name_pattern``: glob syntax


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _one_or_many(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else _items(value)
