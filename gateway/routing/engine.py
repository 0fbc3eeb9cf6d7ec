"""The routing engine: a pure function from (request facts, policy, live statistics) to a Decision.

No I/O, no clock, no randomness: the same inputs give the same Decision, which is what makes the
golden cases of ``gateway policy test`` and the explain endpoint trustworthy. Steps:

1. The model name the client asked for selects its candidate deployments, directly or through an
   alias or glob pattern of a model (unknown → 404; a team may be limited to some model names → 403).
2. Rules are evaluated in order. Requirements of every matching rule add up; for each other effect
   the first matching rule that sets it wins; ``deny`` ends routing.
3. Each candidate is kept or dropped with a reason: endpoint_unsupported, capability_missing,
   context_too_small, rule_requirement, unhealthy, over_price.
4. Survivors are ranked by the objective: ``cost`` (expected request cost), ``latency`` (expected time
   from live EWMAs, configured priors until measured), ``order`` (as listed), or weights blending cost
   and latency. A latency SLO puts the cheapest deployments expected to meet it first. The expected
   time includes the wait for a free slot on a self-hosted server that reports its own queue (a load
   source): a server whose queue would push the request past its SLO falls behind those that meet it,
   and the Decision names it as ``spilled``.
5. Fallbacks are the rest of the ranking; only when a rule allows it may deployments that failed a
   rule requirement (and nothing else) follow at the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from gateway.core.errors import ModelNotFound, PermissionDenied
from gateway.core.types import CacheDirective, Decision, Dropped, Endpoint, RequestFacts, ShadowPlan, Target
from gateway.policy.conditions import Requirement
from gateway.policy.models import CacheSettings, Deployment, ModelRoute, Objective, Policy, ShadowTarget
from gateway.policy.prices import request_cost
from gateway.routing.conditions import matches, unmet_requirement
from gateway.routing.queueing import queue_wait_ms
from gateway.routing.stats import DeploymentStats

_FEATURE_NEEDS = {
    "tools": ("tools",),
    "vision": ("vision",),
    "json_schema": ("json_schema",),
    "json_mode": ("json_mode", "json_schema"),
    "logprobs": ("logprobs",),
}
_NO_STATS = DeploymentStats()
_COST_FLOOR = 1e-6  # USD


@dataclass(slots=True)
class _Effects:
    require: Requirement | None = None
    deny: str | None = None
    deny_rule: str | None = None
    objective: Objective | None = None
    latency_slo_ms: float | None = None
    max_price_usd: float | None = None
    fallback_outside: bool | None = None
    cache: CacheSettings | None = None
    expected_output: int | None = None
    deciding_rule: str | None = None
    shadow: ShadowTarget | Literal[False] | None = None
    shadow_rule: str | None = None


def decide(
    facts: RequestFacts,
    policy: Policy,
    stats: Mapping[str, DeploymentStats],
    *,
    decision_id: str = "",
    policy_version: str = "",
) -> Decision:
    name = policy.resolve_model(facts.model)
    if name is None:
        raise ModelNotFound(f"The model `{facts.model}` does not exist or you do not have access to it.", param="model")
    if name != facts.model:  # an alias: rules, team lists and the Decision speak of the model's own name
        facts = replace(facts, model=name)
    route = policy.models[name]
    team = policy.teams.get(facts.team)
    if team is not None and team.models is not None and facts.model not in team.models:
        raise PermissionDenied(f"Team `{facts.team}` may not use the model `{facts.model}`.", param="model")

    effects, fired = _apply_rules(policy, facts)
    cache_settings = effects.cache or policy.defaults.cache
    cache = CacheDirective(cache_settings.enabled, cache_settings.ttl_seconds, cache_settings.allow_nondeterministic)
    if effects.deny is not None:
        return Decision(decision_id=decision_id, model=facts.model, policy_version=policy_version, rules_fired=fired,
                        cache=cache, targets=(), rule=effects.deny_rule or "default", denied=effects.deny)

    expected_out = facts.max_output_tokens or effects.expected_output or policy.defaults.expected_output_tokens
    kept: list[tuple[Deployment, float, float]] = []
    outside: list[tuple[Deployment, float, float]] = []
    dropped: list[Dropped] = []
    queued: dict[str, float] = {}
    for name in route.deployments:
        dep = policy.deployments[name]
        out = expected_out if dep.max_output_tokens is None else min(expected_out, dep.max_output_tokens)
        cost = request_cost(dep, facts.prompt_tokens, out)
        queued[name] = queue = expected_queue_ms(dep, stats.get(name, _NO_STATS), out)
        latency = expected_service_ms(dep, stats.get(name, _NO_STATS), out) + queue
        reason = _technical_fit(dep, facts, policy.defaults.token_estimate_margin)
        if reason is None and not stats.get(name, _NO_STATS).healthy:
            reason = ("unhealthy", "circuit breaker open")
        if reason is None and effects.max_price_usd is not None and cost > effects.max_price_usd:
            reason = ("over_price", f"expected ${cost:.6f} above ${effects.max_price_usd:g}")
        if reason is None and effects.require is not None:
            unmet = unmet_requirement(effects.require, dep)
            if unmet is not None:
                dropped.append(Dropped(name, "rule_requirement", unmet))
                outside.append((dep, cost, latency))
                continue
        if reason is not None:
            dropped.append(Dropped(name, *reason))
            continue
        kept.append((dep, cost, latency))

    objective = "cost" if facts.budget_pacing else (effects.objective or route.objective or policy.defaults.objective)
    ranked = _rank(kept, objective, effects.latency_slo_ms)
    if effects.fallback_outside and ranked:
        ranked += _rank(outside, objective, effects.latency_slo_ms)
    limit = 1 + policy.defaults.max_fallbacks
    latency_of = {dep.name: lat for dep, _, lat in kept + outside}
    targets = tuple(
        Target(dep.name, round(cost, 8), round(score, 6), round(latency_of[dep.name], 3), round(queued[dep.name], 3))
        for dep, cost, score in ranked[:limit]
    )
    return Decision(
        decision_id=decision_id, model=facts.model, policy_version=policy_version, rules_fired=fired, cache=cache,
        targets=targets, dropped=tuple(dropped), rule=effects.deciding_rule or "default",
        objective=_objective_name(objective), max_price_usd=effects.max_price_usd, latency_slo_ms=effects.latency_slo_ms,
        required=_required(effects.require), spilled=_spilled(kept, ranked, queued, objective, effects.latency_slo_ms),
        shadow=_shadow_plan(facts, policy, route, effects, decision_id),
    )


def _apply_rules(policy: Policy, facts: RequestFacts) -> tuple[_Effects, tuple[str, ...]]:
    effects = _Effects()
    fired: list[str] = []
    for rule in policy.rules:
        if not matches(rule.when, facts):
            continue
        fired.append(rule.name)
        if effects.deciding_rule is None:
            effects.deciding_rule = rule.name
        if rule.deny is not None:
            effects.deny, effects.deny_rule = rule.deny, rule.name
            break
        if rule.require is not None:
            effects.require = rule.require if effects.require is None else effects.require.merged(rule.require)
        for mine, theirs in (
            ("objective", rule.objective), ("latency_slo_ms", rule.latency_slo_ms),
            ("max_price_usd", rule.max_price_usd), ("fallback_outside", rule.fallback_outside_required),
            ("cache", rule.cache), ("expected_output", rule.expected_output_tokens),
        ):
            if theirs is not None and getattr(effects, mine) is None:
                setattr(effects, mine, theirs)
        if rule.shadow is not None and effects.shadow is None:
            effects.shadow, effects.shadow_rule = rule.shadow, rule.name
    return effects, tuple(fired)


def _shadow_plan(facts: RequestFacts, policy: Policy, route: ModelRoute, effects: _Effects,
                 decision_id: str) -> ShadowPlan | None:
    """Whether this request is shadowed, and where: sampled by a hash of its id, then held to the same hard
    requirements and technical fit as any target (a confidential request is never shadowed to a vendor
    when a rule requires self-hosting for it). Fallbacks may leave the required set; a shadow never does."""
    target = effects.shadow if effects.shadow is not None else route.shadow
    if not isinstance(target, ShadowTarget):
        return None  # no shadow, or a rule turned it off
    set_by = effects.shadow_rule if effects.shadow is not None and effects.shadow_rule else "model"
    plan = ShadowPlan(target.deployment, target.sample, in_sample(decision_id, target.sample), set_by=set_by)
    if not plan.sampled:
        return plan
    dep = policy.deployments[target.deployment]
    reason = ("not_compared", "embeddings are not compared") if facts.endpoint is Endpoint.EMBEDDINGS else None
    reason = reason or _technical_fit(dep, facts, policy.defaults.token_estimate_margin)
    if reason is None and effects.require is not None:
        unmet = unmet_requirement(effects.require, dep)
        if unmet is not None:
            reason = ("rule_requirement", unmet)
    return plan if reason is None else replace(plan, skipped=reason[0], detail=reason[1])


def in_sample(request_id: str, sample: float) -> bool:
    """Whether a request id falls within a sample: its hash, read as a fraction of 2**64, is below ``sample``.
    The same id always gives the same answer, in every process (unlike Python's salted ``hash``)."""
    if sample >= 1:
        return True
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < sample * 2**64


def _technical_fit(dep: Deployment, facts: RequestFacts, margin: float) -> tuple[str, str] | None:
    endpoint = facts.endpoint
    if endpoint.value not in dep.endpoints and not (endpoint.translates_to_chat and "chat" in dep.endpoints):
        return "endpoint_unsupported", f"does not serve {endpoint.value}"
    for feature in facts.features:
        needs = _FEATURE_NEEDS.get(feature)
        if needs and not any(c in dep.capabilities for c in needs):
            return "capability_missing", f"no {feature}"
    # The executor never asks a deployment for more output than its cap (``executor.body_for``).
    asked = facts.max_output_tokens or 0
    output = asked if dep.max_output_tokens is None else min(asked, dep.max_output_tokens)
    needed = facts.prompt_tokens + output
    # The prompt count is an estimate: drop only when even its low end does not fit. Closer to the window
    # the deployment keeps its place, and an upstream "context length exceeded" moves on to the next target.
    if facts.prompt_tokens * (1 - margin) + output > dep.context_window:
        return "context_too_small", f"needs ~{needed} tokens, window is {dep.context_window}"
    return None


def expected_latency_ms(dep: Deployment, stats: DeploymentStats, output_tokens: int) -> float:
    """Time to the last token: the wait for a free slot (servers reporting their queue), then the answer."""
    return expected_queue_ms(dep, stats, output_tokens) + expected_service_ms(dep, stats, output_tokens)


def expected_service_ms(dep: Deployment, stats: DeploymentStats, output_tokens: int) -> float:
    """Time to the last token once the request runs: first token, then the output at the measured speed."""
    ttft = stats.ttft_ms if stats.ttft_ms is not None else dep.latency_prior.ttft_ms
    tps = stats.tokens_per_second or dep.latency_prior.tokens_per_second
    return ttft + output_tokens / tps * 1000


def expected_queue_ms(dep: Deployment, stats: DeploymentStats, output_tokens: int) -> float:
    """Wait for a free slot on a server that reported its load; the requests ahead of this one take the
    deployment's measured mean latency each (this request's own estimate until measured)."""
    load = stats.server
    if load is None:
        return 0.0
    service = stats.latency_ms if stats.latency_ms is not None else expected_service_ms(dep, stats, output_tokens)
    return queue_wait_ms(stats.server_busy, load.slots, service, running=load.running, waiting=load.waiting)


def _spilled(kept: list[tuple[Deployment, float, float]], ranked: list[tuple[Deployment, float, float]],
             queued: Mapping[str, float], objective: Objective, slo_ms: float | None) -> tuple[str, ...]:
    """The deployment that would be the primary if no server had a queue, when its queue moved it."""
    if not ranked or not any(queued[dep.name] > 0 for dep, _, _ in kept):
        return ()
    idle = _rank([(dep, cost, lat - queued[dep.name]) for dep, cost, lat in kept], objective, slo_ms)
    first = idle[0][0].name if idle else None
    if first is None or first == ranked[0][0].name or queued[first] <= 0:
        return ()
    return (first,)


def _rank(
    rows: list[tuple[Deployment, float, float]], objective: Objective, slo_ms: float | None
) -> list[tuple[Deployment, float, float]]:
    """Order candidates; returns (deployment, expected cost, score) with lower scores first."""
    if not rows:
        return []
    order = {dep.name: i for i, (dep, _, _) in enumerate(rows)}
    if slo_ms is not None:
        meets = sorted((r for r in rows if r[2] <= slo_ms), key=lambda r: (r[1], r[2], order[r[0].name]))
        misses = sorted((r for r in rows if r[2] > slo_ms), key=lambda r: (r[2], order[r[0].name]))
        return [(d, c, c) for d, c, _ in meets] + [(d, c, lat) for d, c, lat in misses]
    if objective == "order":
        return [(d, c, float(i)) for i, (d, c, _) in enumerate(rows)]
    if objective == "cost":
        return [(d, c, c) for d, c, _ in sorted(rows, key=lambda r: (r[1], order[r[0].name]))]
    if objective == "latency":
        return [(d, c, lat) for d, c, lat in sorted(rows, key=lambda r: (r[2], order[r[0].name]))]
    weights = objective if isinstance(objective, dict) else {"cost": 1.0}
    # Each term as a ratio to the best candidate ("2x the price", "3x slower"), so weights compare like
    # with like; a small floor keeps free deployments from dividing by zero.
    min_cost = min(r[1] for r in rows) + _COST_FLOOR
    min_lat = min(r[2] for r in rows) + 1.0
    scored = [
        (d, c, weights.get("cost", 0.0) * (c + _COST_FLOOR) / min_cost + weights.get("latency", 0.0) * (lat + 1.0) / min_lat)
        for d, c, lat in rows
    ]
    return sorted(scored, key=lambda r: (r[2], order[r[0].name]))


def _required(req: Requirement | None) -> dict[str, object]:
    return req.model_dump(by_alias=True, exclude_none=True) if req is not None else {}


def _objective_name(objective: Objective) -> str:
    if isinstance(objective, dict):
        return "+".join(f"{k}:{v:g}" for k, v in sorted(objective.items()))
    return objective
