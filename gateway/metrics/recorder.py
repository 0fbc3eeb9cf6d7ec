"""Record one finished request (and executor events) into ``GatewayMetrics`` with bounded labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.errors import GatewayError
from gateway.core.hooks import ExecutorHooks
from gateway.core.types import BreakerState, Usage
from gateway.metrics.registry import GatewayMetrics
from gateway.policy.models import Deployment, Policy

OTHER = "other"
NONE = "none"


@dataclass(slots=True)
class Outcome:
    """What the access log and the metrics need to know about one finished request."""

    endpoint: str
    model: str
    team: str
    outcome: str  # ok | error | denied | cached
    duration_s: float
    upstream_s: float = 0.0
    ttft_s: float | None = None
    deployment: Deployment | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0
    reference_cost_usd: float = 0.0
    rule: str = "default"
    error: GatewayError | None = None
    cache: str | None = None


class MetricsRecorder(ExecutorHooks):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.m = metrics
        self._models: frozenset[str] = frozenset()
        self._teams: frozenset[str] = frozenset()
        self._rules: frozenset[str] = frozenset()
        self._active: tuple[str, str] | None = None
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, memoised: prometheus_client's own lookup takes a lock and builds
        keys on every call, and the hot path makes a dozen of these per request. Label sets are bounded
        by the policy, so this stays small."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def policy_installed(self, policy: Policy, version: str, loaded_at: float, *, initial: bool = False) -> None:
        self._models = frozenset(policy.models)
        self._teams = frozenset(policy.teams) | {"default"}
        self._rules = frozenset(r.name for r in policy.rules) | {"default"}
        # Set the previous version to 0 rather than removing it: in multiprocess mode a removed
        # series lives on in this worker's file with its last value.
        if self._active is not None and self._active != (policy.name, version):
            self.m.policy_info.labels(*self._active).set(0)
        self._active = (policy.name, version)
        self.m.policy_info.labels(policy.name, version).set(1)
        self.m.policy_loaded_at.set(loaded_at)
        if not initial:
            self.m.policy_reloads.labels("success").inc()
        for rule in policy.rules:
            if rule.latency_slo_ms is not None:
                self.m.slo_target.labels(rule.name).set(rule.latency_slo_ms / 1000)
        for team_name, team in policy.teams.items():
            if team.budget is not None:
                # Series that exist from the start at 0, so the first refusal is an increase.
                self.m.budget_denied.labels(team_name, team.budget.on_exceed).inc(0)
                for period, limit in (("day", team.budget.daily_usd), ("month", team.budget.monthly_usd)):
                    if limit is not None:
                        self.m.budget_limit.labels(team_name, period).set(limit)

    def model_label(self, model: str) -> str:
        return model if model in self._models else OTHER

    def team_label(self, team: str) -> str:
        return team if team in self._teams else OTHER

    def rule_label(self, rule: str) -> str:
        return rule if rule in self._rules else OTHER

    def request_done(self, outcome: Outcome) -> None:
        m, c = self.m, self._child
        dep = outcome.deployment
        dep_name, provider, hosting = (dep.name, dep.type, dep.hosting) if dep else (NONE, NONE, NONE)
        model = self.model_label(outcome.model)
        team = self.team_label(outcome.team)
        c(m.in_flight, outcome.endpoint).dec()
        c(m.requests, outcome.endpoint, model, dep_name, provider, hosting, team, outcome.outcome).inc()
        c(m.request_duration, outcome.endpoint, model, dep_name, outcome.outcome).observe(outcome.duration_s)
        if outcome.upstream_s:
            c(m.overhead, outcome.endpoint).observe(max(0.0, outcome.duration_s - outcome.upstream_s))
        if outcome.ttft_s is not None:
            c(m.ttft, model, dep_name).observe(outcome.ttft_s)
        if outcome.usage is not None and dep is not None:
            c(m.tokens, dep_name, hosting, team, "input").inc(outcome.usage.prompt_tokens)
            c(m.tokens, dep_name, hosting, team, "output").inc(outcome.usage.completion_tokens)
            c(m.cost, dep_name, hosting, team).inc(outcome.cost_usd)
            c(m.reference_cost, dep_name, hosting, team).inc(outcome.reference_cost_usd)
        if outcome.error is not None:
            c(m.errors, outcome.error.fault, outcome.error.kind, outcome.endpoint).inc()
        if outcome.cache is not None:
            c(m.cache, outcome.endpoint, outcome.cache).inc()

    def decision(self, model: str, rule: str, hosting: str, dropped: list[tuple[str, str]]) -> None:
        m, c = self.m, self._child
        c(m.decisions, self.model_label(model), self.rule_label(rule), hosting).inc()
        for dep_name, reason in dropped:
            c(m.dropped, dep_name, reason).inc()

    def budget_denied(self, team: str, action: str) -> None:
        m, c = self.m, self._child
        c(m.budget_denied, self.team_label(team), action).inc()

    def budget_remaining(self, team: str, day: float | None, month: float | None) -> None:
        m, c = self.m, self._child
        team = self.team_label(team)
        if day is not None:
            c(m.budget_remaining, team, "day").set(day)
        if month is not None:
            c(m.budget_remaining, team, "month").set(month)

    def rate_limited(self, team: str, scope: str, limit: str) -> None:
        m, c = self.m, self._child
        c(m.rate_limited, self.team_label(team), scope, limit).inc()

    def breaker_changed(self, deployment: str, state: BreakerState) -> None:
        m, c = self.m, self._child
        c(m.breaker_state, deployment).set(int(state))

    # ExecutorHooks
    def retry(self, deployment: Deployment, error: GatewayError) -> None:
        m, c = self.m, self._child
        c(m.retries, deployment.name, error.kind if isinstance(error, GatewayError) else "unknown").inc()

    def fallback(self, from_dep: str, to_dep: str, error: str) -> None:
        m, c = self.m, self._child
        c(m.fallbacks, from_dep, to_dep, error).inc()

    def upstream_started(self, deployment: str) -> None:
        m, c = self.m, self._child
        c(m.upstream_in_flight, deployment).inc()

    def upstream_finished(self, deployment: str) -> None:
        m, c = self.m, self._child
        c(m.upstream_in_flight, deployment).dec()

    def load_spill(self, deployment: str) -> None:
        m, c = self.m, self._child
        c(m.load_spills, deployment).inc()

    def server_load(self, deployment: str, load: Any, stats: Any) -> None:
        """A self-hosted server's report of its own load (``routing.server_load.ServerLoad`` or ``None``
        when there is no fresh one) and the gateway's statistics of it (``routing.stats.DeploymentStats``)."""
        m, c = self.m, self._child
        if load is None:
            for metric, labels in ((m.server_requests, (deployment, "running")), (m.server_requests, (deployment, "waiting")),
                                   (m.server_slots, (deployment,)), (m.server_kv_cache, (deployment,))):
                self._drop(metric, *labels)  # unknown now: no series rather than a stale value
        else:
            c(m.server_requests, deployment, "running").set(load.running)
            c(m.server_requests, deployment, "waiting").set(load.waiting)
            self._gauge(m.server_slots, load.slots, deployment)
            self._gauge(m.server_kv_cache, load.kv_cache_usage, deployment)
        if stats is not None:
            self._gauge(m.deployment_ttft, stats.ttft_ms / 1000 if stats.ttft_ms is not None else None, deployment)
            self._gauge(m.deployment_tps, stats.tokens_per_second, deployment)

    def _gauge(self, metric: Any, value: float | None, *labels: str) -> None:
        if value is None:
            self._drop(metric, *labels)
        else:
            self._child(metric, *labels).set(value)

    def _drop(self, metric: Any, *values: str) -> None:
        if self._children.pop((metric, values), None) is not None:
            metric.remove(*values)

    def request_started(self, endpoint: str) -> None:
        m, c = self.m, self._child
        c(m.in_flight, endpoint).inc()

    def attempt(self, deployment: Deployment, seconds: float, error: GatewayError | None) -> None:
        m, c = self.m, self._child
        outcome = "ok" if error is None else "error"
        c(m.upstream_duration, deployment.name, deployment.type, deployment.hosting, outcome).observe(seconds)
        if error is not None:
            c(m.upstream_errors, deployment.name, deployment.type, deployment.hosting, error.kind).inc()

