"""Static checks of a valid policy that point at likely mistakes, reported by ``gateway policy check``
as warnings: the policy loads and routes, but probably not as its author meant.

- a rule whose ``when`` can never match (its conditions contradict each other or the policy);
- a rule never reached because an earlier ``deny`` rule matches every request it matches;
- a requirement every candidate deployment already meets (it changes nothing);
- a requirement no deployment of any model the rule applies to meets (the rule refuses all it matches);
- a ``reference_model`` that is not a vendor deployment (the savings baseline means nothing).

And notes on shadows: a shadow deployment that is also one of the model's own (the requests it answers
itself are not shadowed), and a self-hosted shadow deployment without ``max_concurrency`` or a
``load_source`` (the gateway cannot tell when its server is busy, so shadows may queue there).

Names that do not resolve are errors (``policy.references``). A model that cannot serve some requests
because of a rule ("confidential data never goes to gpt-4o-mini") is what policies are for: that is
reported as a note, not a warning.
They use routing's own comparisons (``routing.conditions``), so what is reported is what routing does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from gateway.policy.conditions import Condition, Range, Requirement
from gateway.policy.loader import Inspection, inspect_file
from gateway.policy.models import Policy, Rule
from gateway.policy.references import Finding
from gateway.routing.conditions import data_class_rank, unmet_requirement
from gateway.routing.subsumption import covers


def lint(policy: Policy) -> list[Finding]:
    findings: list[Finding] = []
    dead: set[int] = set()  # rules that never apply: nothing else is said about them
    for i, rule in enumerate(policy.rules):
        path = ("rules", str(i))
        never = _never_matches(rule.when, policy)
        if never is not None:
            findings.append(Finding((*path, "when"), f"rule {rule.name!r} can never match: {never}", "warning"))
            dead.add(i)
            continue
        shadow = _shadowing_deny(policy, i)
        if shadow is not None:
            findings.append(Finding(path, f"rule {rule.name!r} is never reached: the earlier rule {shadow!r} denies "
                                          "every request it matches", "warning"))
            dead.add(i)
            continue
        findings += _redundant_requirements(policy, path, rule)
    findings += unsatisfiable(policy, skip=dead)
    findings += _reference_findings(policy)
    findings += _shadow_notes(policy)
    return findings


def unsatisfiable(policy: Policy, skip: set[int] | frozenset[int] = frozenset()) -> list[Finding]:
    """Models whose every deployment fails a rule's requirement when that rule applies: a note per model,
    and a warning when that holds for every model the rule applies to."""
    problems: list[Finding] = []
    for alias, route in policy.models.items():
        if not any(policy.deployments[d].endpoints for d in route.deployments):
            problems.append(Finding(("models", alias), f"model {alias!r}: no deployment serves any endpoint", "warning"))
    for i, rule in enumerate(policy.rules):
        if rule.require is None or i in skip:
            continue
        models = _models_of(rule, policy)
        refused = [m for m in models
                   if all(unmet_requirement(rule.require, policy.deployments[d]) for d in policy.models[m].deployments)]
        path = ("rules", str(i), "require")
        if models and len(refused) == len(models):
            problems.append(Finding(path, f"rule {rule.name!r}: no deployment of any model it applies to meets its "
                                          "requirement, so it refuses every request it matches (use `deny` to say so)",
                                    "warning"))
        elif refused:
            problems.append(Finding(path, f"when rule {rule.name!r} applies, requests for {', '.join(refused)} are "
                                          "refused: none of their deployments complies", "note"))
    return problems


def _models_of(rule: Rule, policy: Policy) -> list[str]:
    """Model names the rule can apply to (its ``when.model``, else all)."""
    return [m for m in policy.models if rule.when.model is None or m in rule.when.model]


def _never_matches(cond: Condition, policy: Policy) -> str | None:  # noqa: C901 - one check per line reads best
    """Why no request can satisfy ``cond``, or None when some request can."""
    if cond.data_class is not None and cond.data_class_at_least is not None:
        floor = data_class_rank(cond.data_class_at_least)
        if all(data_class_rank(c) < floor for c in cond.data_class):
            return f"data_class {list(cond.data_class)} are all below data_class_at_least {cond.data_class_at_least}"
    if cond.prompt_tokens is not None and _empty(cond.prompt_tokens):
        return "the prompt_tokens range is empty"
    if cond.hours_utc is not None and cond.hours_utc.from_ == cond.hours_utc.to:
        return f"hours_utc from {cond.hours_utc.from_} to {cond.hours_utc.to} is an empty window"
    detection = policy.defaults.detect_sensitive_data
    if not detection and (cond.detected is not None or cond.sensitive is True):
        return "it needs detected sensitive data, but defaults.detect_sensitive_data is false"
    if cond.sensitive is False and cond.detected is not None:
        return "sensitive: false excludes every request with a detected kind"
    if cond.stream is False and cond.features is not None and "stream" in cond.features:
        return "stream: false contradicts features [stream]"
    if cond.endpoint is not None and "chat" not in cond.endpoint and set(cond.features or ()) - {"stream"}:
        return "features other than stream are only detected on chat requests"
    if cond.key is not None and cond.team is not None:
        teams = {k.team for k in policy.keys if k.name in cond.key}
        if teams and not teams & set(cond.team):
            return f"its keys {list(cond.key)} belong to teams {sorted(teams)}, none of {list(cond.team)}"
    if cond.model is not None and cond.team is not None:
        usable = [m for m in cond.model if any(_team_may_use(policy, t, m) for t in cond.team)]
        if not usable:
            return f"teams {list(cond.team)} may not use models {list(cond.model)}"
    if cond.not_ is not None and cond.not_ == Condition():
        return "`not: {}` excludes every request"
    for nested in cond.all or ():
        reason = _never_matches(nested, policy)
        if reason is not None:
            return f"a condition under `all` never matches ({reason})"
    if cond.any is not None and cond.any and all(_never_matches(c, policy) is not None for c in cond.any):
        return "no condition under `any` can match"
    return None


def _team_may_use(policy: Policy, team: str, model: str) -> bool:
    settings = policy.teams.get(team)
    return settings is None or settings.models is None or model in settings.models


def _empty(r: Range) -> bool:
    """No prompt size (a count, never negative) lies in ``r``."""
    low, low_inclusive = 0.0, True
    if r.gt is not None and r.gt >= low:
        low, low_inclusive = r.gt, False
    if r.gte is not None and r.gte > low:
        low, low_inclusive = r.gte, True
    high, high_inclusive = float("inf"), False
    if r.lt is not None and r.lt <= high:
        high, high_inclusive = r.lt, False
    if r.lte is not None and r.lte < high:
        high, high_inclusive = r.lte, True
    return low > high or (low == high and not (low_inclusive and high_inclusive))


def _shadowing_deny(policy: Policy, index: int) -> str | None:
    rule = policy.rules[index]
    for earlier in policy.rules[:index]:
        if earlier.deny is not None and covers(earlier.when, rule.when):
            return earlier.name
    return None


def _redundant_requirements(policy: Policy, path: tuple[str, ...], rule: Rule) -> Iterator[Finding]:
    """Each constraint of ``rule.require`` that every deployment the rule can see already meets."""
    if rule.require is None:
        return
    deps = {d for m in _models_of(rule, policy) for d in policy.models[m].deployments}
    if not deps:
        return
    for field, value in rule.require.model_dump(by_alias=True, exclude_none=True).items():
        single = Requirement.model_validate({field: value})
        if all(unmet_requirement(single, policy.deployments[d]) is None for d in deps):
            shown = sorted(deps)
            yield Finding((*path, "require", field),
                          f"rule {rule.name!r}: every deployment it can apply to ({', '.join(shown)}) already meets "
                          f"require.{field}; the constraint changes nothing", "warning")


def _reference_findings(policy: Policy) -> Iterator[Finding]:
    ref = policy.reference_model
    if ref is not None and policy.deployments[ref].hosting != "vendor":
        yield Finding(("reference_model",), f"reference_model {ref!r} is self-hosted: savings are measured against "
                                            "an all-vendor baseline, so name a vendor deployment", "warning")

def _shadow_notes(policy: Policy) -> Iterator[Finding]:
    shadows: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = [
        (("models", model, "shadow", "deployment"), route.shadow.deployment, route.deployments)
        for model, route in policy.models.items() if route.shadow is not None]
    shadows += [(("rules", str(i), "shadow", "deployment"), rule.shadow.deployment, ())
                for i, rule in enumerate(policy.rules) if rule.shadow]
    for path, name, own in shadows:
        if name in own:
            yield Finding(path, f"{name!r} is also one of the model's deployments: the requests it answers itself "
                                "are not shadowed (dropped as same_deployment)", "note")
        dep = policy.deployments[name]
        if dep.hosting == "self" and dep.max_concurrency is None and dep.load_source is None:
            yield Finding(path, f"{name!r} has neither max_concurrency nor a load_source: the gateway cannot tell when "
                                "its server is busy, so shadows may queue there ahead of live requests", "note")


def check_file(path: str, env: Mapping[str, str] | None = None) -> Inspection:
    """Everything ``gateway policy check`` reports for one file: load errors, then, for a usable policy,
    the warnings and notes above, each at its place in the file."""
    inspection = inspect_file(path, env)
    loaded = inspection.loaded
    if loaded is None:
        return inspection
    found = [loaded.issue(f.path, f.message, f.severity) for f in lint(loaded.policy)]
    return Inspection(loaded, sorted([*inspection.issues, *found], key=lambda i: (i.line, i.column)))
