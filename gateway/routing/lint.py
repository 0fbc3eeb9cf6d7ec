"""Static checks of a valid policy that point at likely mistakes: models no rule-compliant deployment
can serve. Reported by ``gateway policy check`` as warnings (a policy may mean it: "restricted data
with images cannot be served" is a legitimate outcome)."""

from __future__ import annotations

from gateway.policy.models import Policy
from gateway.routing.conditions import unmet_requirement


def unsatisfiable(policy: Policy) -> list[str]:
    problems: list[str] = []
    for alias, route in policy.models.items():
        deps = [policy.deployments[d] for d in route.deployments]
        if not any(set(d.endpoints) & {"chat", "completions", "embeddings"} for d in deps):
            problems.append(f"models.{alias}: no deployment serves any endpoint")
        for rule in policy.rules:
            if rule.require is None or (rule.when.model is not None and alias not in rule.when.model):
                continue
            if all(unmet_requirement(rule.require, d) for d in deps):
                problems.append(f"models.{alias}: when rule {rule.name!r} applies, no deployment of this model complies (503 no_route)")
    return problems
