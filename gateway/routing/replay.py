"""Replay recorded traffic through a candidate policy with the pure engine: no upstream is called.

For every request: where it goes now (the recorded route, or a ``--baseline`` policy's decision) and
where the candidate would send it; what it cost (recorded), what it would cost, and what it would
have cost on the policy's ``reference_model`` (the all-vendor baseline); whether it would be denied,
refused or left without a route; and, where a rule sets a latency SLO, whether the chosen deployment
is expected to meet it.

How the figures are made:

- tokens: the recorded usage when the log has it, else the estimated prompt and the requested
  output (or ``defaults.expected_output_tokens``); the same counts price every policy and the baseline;
- cost: ``policy.prices.request_cost`` of the primary target (fallbacks are not assumed); a request
  the log shows served from the cache costs nothing again when the candidate caches it too. Every cost
  figure (recorded, current, projected, all-vendor) sums the same requests: those the candidate
  serves. Requests it would deny, refuse or leave without a route are counted apart, with what they
  cost now (``unserved_*``), so savings are never inflated by traffic the candidate drops;
- latency: the engine's own ``expected_latency_ms`` with each deployment's time to first token and
  output speed measured from the recorded traffic (medians), its configured prior where unrecorded —
  the same statistics the engine ranks by, so latency-ranked routes replay as they would run;
- health is not replayed: every deployment counts as up.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.core.errors import GatewayError
from gateway.core.types import Decision, Endpoint
from gateway.policy.models import Policy
from gateway.policy.prices import request_cost
from gateway.routing.engine import decide, expected_latency_ms
from gateway.routing.facts import FactsBuilder
from gateway.routing.stats import DeploymentStats
from gateway.routing.traffic import Recorded, Traffic, TrafficRecord, facts_under

DENIED, NO_ROUTE, REFUSED = "denied", "no route", "refused"
_NO_ROUTE_ERRORS = ("NoRouteAvailable", "NoRouteForRequest")
_REFUSED_ERRORS = ("ModelNotFound", "PermissionDenied")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes under one policy: a deployment, or DENIED / NO_ROUTE / REFUSED."""

    to: str
    rule: str = "default"
    why: str = ""
    slo_ms: float | None = None
    cache: bool = False


@dataclass(slots=True)
class Tally:
    requests: int = 0
    changed_routes: int = 0
    denied: int = 0
    no_route: int = 0
    refused: int = 0
    recorded_cost_usd: float = 0.0
    current_cost_usd: float = 0.0
    projected_cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    unserved_recorded_cost_usd: float = 0.0
    unserved_current_cost_usd: float = 0.0
    slo_requests: int = 0
    slo_misses: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def served(self) -> int:
        return self.requests - self.denied - self.no_route - self.refused

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "changed_routes": self.changed_routes, "denied": self.denied,
            "no_route": self.no_route, "refused": self.refused, "served": self.served,
            "recorded_cost_usd": round(self.recorded_cost_usd, 8), "current_cost_usd": round(self.current_cost_usd, 8),
            "projected_cost_usd": round(self.projected_cost_usd, 8), "baseline_cost_usd": round(self.baseline_cost_usd, 8),
            "savings_ratio": _ratio(self.projected_cost_usd, self.baseline_cost_usd),
            "savings_vs_current_ratio": _ratio(self.projected_cost_usd, self.current_cost_usd),
            "unserved_recorded_cost_usd": round(self.unserved_recorded_cost_usd, 8),
            "unserved_current_cost_usd": round(self.unserved_current_cost_usd, 8),
            "slo_requests": self.slo_requests, "slo_misses": self.slo_misses,
            "projected_latency_ms_p50": percentile(self.latencies_ms, 0.5),
            "projected_latency_ms_p95": percentile(self.latencies_ms, 0.95),
        }

    @property
    def savings_ratio(self) -> float | None:
        """Share of the all-vendor cost the candidate saves (1 − projected / baseline)."""
        return _ratio(self.projected_cost_usd, self.baseline_cost_usd)

    @property
    def savings_vs_current_ratio(self) -> float | None:
        """Share of today's cost the candidate saves (1 − projected / current)."""
        return _ratio(self.projected_cost_usd, self.current_cost_usd)


def _ratio(projected: float, reference: float) -> float | None:
    return round(1 - projected / reference, 4) + 0.0 if reference > 0 else None  # + 0.0: never "-0.0%"


@dataclass(slots=True)
class Report:
    candidate: str
    current: str
    traffic_kind: str
    total: Tally = field(default_factory=Tally)
    by_model: dict[str, Tally] = field(default_factory=dict)
    by_team: dict[str, Tally] = field(default_factory=dict)
    by_rule: dict[str, Tally] = field(default_factory=dict)
    routes: Counter[tuple[str, str]] = field(default_factory=Counter)
    no_route_reasons: Counter[str] = field(default_factory=Counter)
    denials: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    slo_misses: dict[str, list[float]] = field(default_factory=dict)
    """Expected latencies (ms) of the requests expected to miss an SLO, by rule and deployment."""
    changes: dict[tuple[str, str, str], Tally] = field(default_factory=dict)
    """Requests the candidate moves from one deployment to another, by (model, now, candidate): what shadow
    evaluation of that pair (``gateway policy simulate --shadow``) speaks to."""
    unknown_teams: set[str] = field(default_factory=set)
    skipped: tuple[tuple[int, str], ...] = ()
    has_current_cost: bool = True
    has_recorded_cost: bool = True

    def to_dict(self) -> dict[str, Any]:
        doc = self.total.to_dict()
        doc.update(
            candidate=self.candidate, current=self.current, traffic=self.traffic_kind,
            routes=[{"from": a, "to": b, "requests": n} for (a, b), n in sorted(self.routes.items(), key=_by_count)],
            by_model={k: v.to_dict() for k, v in sorted(self.by_model.items())},
            by_team={k: v.to_dict() for k, v in sorted(self.by_team.items())},
            by_rule={k: v.to_dict() for k, v in sorted(self.by_rule.items())},
            what_breaks={"no_route": dict(self.no_route_reasons), "denied": dict(self.denials),
                         "refused": dict(self.refusals),
                         "slo_misses": {k: {"requests": len(v), "expected_ms_p50": percentile(v, 0.5),
                                            "expected_ms_max": round(max(v), 1)} for k, v in self.slo_misses.items()}},
            unknown_teams=sorted(self.unknown_teams),
            skipped=[{"line": n, "reason": why} for n, why in self.skipped],
            changes=[{"model": m, "from": a, "to": b, **t.to_dict()} for (m, a, b), t in sorted(self.changes.items())],
        )
        for figure, known in (("current_cost_usd", self.has_current_cost), ("recorded_cost_usd", self.has_recorded_cost)):
            if not known:
                doc[figure] = None
                for group in ("by_model", "by_team", "by_rule"):
                    for row in doc[group].values():
                        row[figure] = None
        return doc


class _Side:
    """One policy, ready to route replayed requests."""

    def __init__(self, policy: Policy, stats: dict[str, DeploymentStats]) -> None:
        self.policy = policy
        self.builder = FactsBuilder(policy)
        self.stats = stats

    def route(self, record: TrafficRecord) -> tuple[Route, Decision | None, Any]:
        facts = facts_under(self.policy, self.builder, record)
        try:
            decision = decide(facts, self.policy, self.stats)
        except GatewayError as exc:
            return Route(REFUSED, why=f"{exc.kind}: {exc.message}"), None, facts
        if decision.denied is not None:
            return Route(DENIED, decision.rule, f"rule {decision.rule}: {decision.denied}"), decision, facts
        if decision.primary is None:
            why = "; ".join(_dropped(d.deployment, d.reason, d.detail, self.policy) for d in decision.dropped)
            return Route(NO_ROUTE, decision.rule, why), decision, facts
        return (Route(decision.primary.deployment, decision.rule, slo_ms=decision.latency_slo_ms,
                      cache=decision.cache.enabled), decision, facts)

    def cost(self, route: Route, prompt: int, completion: int, recorded: Recorded | None) -> float:
        if route.to not in self.policy.deployments:
            return 0.0
        if recorded is not None and recorded.outcome == "cached" and route.cache:
            return 0.0  # served from the cache then; the candidate caches it too
        return request_cost(self.policy.deployments[route.to], prompt, completion)


def replay(traffic: Traffic, candidate: Policy, *, candidate_name: str, baseline: Policy | None = None,
           baseline_name: str = "") -> Report:
    stats = measured_stats(traffic.records)
    then = _Side(candidate, stats)
    now = _Side(baseline, stats) if baseline is not None else None
    reference = _reference(candidate, baseline)
    report = Report(candidate=candidate_name, current=baseline_name or "recorded routes", traffic_kind=traffic.kind,
                    skipped=traffic.skipped)
    report.has_recorded_cost = all(r.recorded is not None for r in traffic.records)
    report.has_current_cost = now is not None or report.has_recorded_cost
    for record in traffic.records:
        route, _, facts = then.route(record)
        prompt, completion = _tokens(record, facts, candidate)
        current = now.route(record)[0] if now is not None else _recorded_route(record.recorded)
        recorded_cost = record.recorded.cost_usd if record.recorded is not None else 0.0
        current_cost = recorded_cost
        if now is not None and current is not None:
            current_cost = now.cost(current, prompt, completion, record.recorded)
        tallies = [report.total, _tally(report.by_model, facts.model), _tally(report.by_team, facts.team),
                   _tally(report.by_rule, route.rule if route.to != REFUSED else "(refused)")]
        latency = None
        if route.to in candidate.deployments:
            dep = candidate.deployments[route.to]
            latency = expected_latency_ms(dep, stats.get(dep.name, DeploymentStats()), completion)
        projected = then.cost(route, prompt, completion, record.recorded)
        base = request_cost(reference, prompt, completion) if reference is not None and latency is not None else 0.0
        if current is not None and current.to != route.to and route.to in candidate.deployments:
            tallies.append(_tally(report.changes, (facts.model, current.to, route.to)))
        for t in tallies:
            _count(t, route, current, latency, recorded_cost, current_cost, projected, base)
        _explain(report, facts, candidate, route, current, latency)
    return report


def _count(t: Tally, route: Route, current: Route | None, latency: float | None, recorded: float, current_cost: float,
           projected: float, base: float) -> None:
    t.requests += 1
    t.changed_routes += current is not None and current.to != route.to
    t.denied += route.to == DENIED
    t.no_route += route.to == NO_ROUTE
    t.refused += route.to == REFUSED
    if latency is None:  # not served by the candidate: what it costs today, apart
        t.unserved_recorded_cost_usd += recorded
        t.unserved_current_cost_usd += current_cost
        return
    t.recorded_cost_usd += recorded
    t.current_cost_usd += current_cost
    t.projected_cost_usd += projected
    t.baseline_cost_usd += base
    t.latencies_ms.append(latency)
    if route.slo_ms is not None:
        t.slo_requests += 1
        t.slo_misses += latency > route.slo_ms


def _explain(report: Report, facts: Any, candidate: Policy, route: Route, current: Route | None,
             latency: float | None) -> None:
    report.routes[(current.to if current is not None else "?", route.to)] += 1
    who = f"{facts.model} (team {facts.team})"
    if route.to == NO_ROUTE:
        report.no_route_reasons[f"{who}: {route.why}"] += 1
    elif route.to == DENIED:
        report.denials[f"{who}: {route.why}"] += 1
    elif route.to == REFUSED:
        report.refusals[f"{who}: {route.why}"] += 1
    elif route.slo_ms is not None and latency is not None and latency > route.slo_ms:
        report.slo_misses.setdefault(f"{who} on {route.to}, SLO {route.slo_ms:g} ms", []).append(latency)
    if facts.team != "default" and facts.team not in candidate.teams:
        report.unknown_teams.add(facts.team)


def _dropped(deployment: str, reason: str, detail: str, policy: Policy) -> str:
    if reason == "context_too_small":  # the detail names this request's size; group by the window instead
        detail = f"prompt too long for its {policy.deployments[deployment].context_window}-token window"
    return f"{deployment}: {reason} ({detail})"


def measured_stats(records: Iterable[TrafficRecord]) -> dict[str, DeploymentStats]:
    """Median time to first token and output speed per deployment, from the recorded answers.

    Streams give both: the first event's time, and the tokens that followed over the rest of the
    request. A non-streamed answer gives a speed once its deployment's time to first token is known.
    """
    served = [r.recorded for r in records if r.recorded is not None and r.recorded.outcome == "ok"
              and r.recorded.deployment is not None and r.recorded.completion_tokens]
    ttfts: dict[str, list[float]] = {}
    for rec in served:
        if rec.ttft_ms is not None:
            ttfts.setdefault(rec.deployment or "", []).append(rec.ttft_ms)
    ttft = {dep: statistics.median(values) for dep, values in ttfts.items()}
    rates: dict[str, list[float]] = {}
    for rec in served:
        dep, tokens = rec.deployment or "", rec.completion_tokens or 0
        if rec.ttft_ms is not None and rec.duration_ms is not None and rec.duration_ms > rec.ttft_ms:
            rates.setdefault(dep, []).append(tokens / ((rec.duration_ms - rec.ttft_ms) / 1000))
        elif rec.ttft_ms is None and dep in ttft and rec.upstream_ms is not None and rec.upstream_ms > ttft[dep]:
            rates.setdefault(dep, []).append(tokens / ((rec.upstream_ms - ttft[dep]) / 1000))
    return {
        dep: DeploymentStats(ttft_ms=ttft.get(dep), tokens_per_second=statistics.median(rates[dep]) if dep in rates else None,
                             samples=len(rates.get(dep, ())))
        for dep in set(ttft) | set(rates)
    }


def _tokens(record: TrafficRecord, facts: Any, policy: Policy) -> tuple[int, int]:
    rec = record.recorded
    prompt = rec.prompt_tokens if rec is not None and rec.prompt_tokens else facts.prompt_tokens
    if facts.endpoint is Endpoint.EMBEDDINGS:
        return prompt, 0
    if rec is not None and rec.completion_tokens is not None:
        return prompt, rec.completion_tokens
    return prompt, facts.max_output_tokens or policy.defaults.expected_output_tokens


def _recorded_route(rec: Recorded | None) -> Route | None:
    if rec is None:
        return None
    if rec.outcome == "denied":
        return Route(DENIED)
    if rec.deployment is not None:
        return Route(rec.deployment)
    if rec.error_type in _NO_ROUTE_ERRORS:
        return Route(NO_ROUTE)
    if rec.error_type in _REFUSED_ERRORS:
        return Route(REFUSED)
    return Route(rec.targets[0]) if rec.targets else Route(f"({rec.outcome})")


def _reference(candidate: Policy, baseline: Policy | None) -> Any:
    for policy in (candidate, baseline):
        if policy is not None and policy.reference_model is not None:
            return policy.deployments[policy.reference_model]
    return None


def _tally(groups: dict[Any, Tally], name: Any) -> Tally:
    tally = groups.get(name)
    if tally is None:
        tally = groups[name] = Tally()
    return tally


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _by_count(item: tuple[tuple[str, str], int]) -> tuple[int, str, str]:
    (a, b), n = item
    return -n, a, b
