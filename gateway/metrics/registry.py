"""All gateway metrics, created on a registry passed in (tests get their own).

Names follow ``gateway_<noun>_<unit>``. Label values come only from bounded, configured sets:
endpoint names, model names and deployments defined in the policy, team names from the policy,
outcome and error-kind enums. Anything a client sends that is not in the policy is reported as
``other`` (``recorder.MetricsRecorder.model_label`` and friends), so a client can never grow a series.

With several workers, set ``PROMETHEUS_MULTIPROC_DIR``; gauges then declare how they aggregate.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

MultiprocessMode = Literal["all", "livesum", "max"]

# Sub-millisecond resolution for the gateway's own overhead, seconds-long tails for upstream calls.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120)

REQUEST_LABELS = ("endpoint", "model", "deployment", "provider", "hosting", "team", "outcome")
DEPLOYMENT_LABELS = ("deployment", "provider", "hosting")


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry, *, multiprocess: bool = False) -> None:
        self.registry = registry
        live: MultiprocessMode = "livesum" if multiprocess else "all"
        latest: MultiprocessMode = "max" if multiprocess else "all"
        r = registry

        self.requests = Counter("gateway_requests", "Requests answered, by route and outcome (ok, error, denied, cached).", REQUEST_LABELS, registry=r)
        self.request_duration = Histogram("gateway_request_duration_seconds", "Time from request received to last byte sent.", ("endpoint", "model", "deployment", "outcome"), buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("gateway_time_to_first_token_seconds", "Time from request received to the first streamed event sent.", ("model", "deployment"), buckets=LATENCY_BUCKETS, registry=r)
        self.upstream_duration = Histogram("gateway_upstream_duration_seconds", "Duration of each upstream attempt.", ("deployment", "provider", "hosting", "outcome"), buckets=LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram("gateway_overhead_seconds", "Time the gateway itself added (request duration minus upstream time).", ("endpoint",), buckets=OVERHEAD_BUCKETS, registry=r)
        self.tokens = Counter("gateway_tokens", "Tokens processed, by direction (input, output).", ("deployment", "hosting", "team", "direction"), registry=r)
        self.cost = Counter("gateway_cost_usd", "Spend in USD at the serving deployment's price.", ("deployment", "hosting", "team"), registry=r)
        self.reference_cost = Counter("gateway_reference_cost_usd", "What the same tokens would have cost on the policy's reference vendor model.", ("deployment", "hosting", "team"), registry=r)
        self.cache = Counter("gateway_cache_requests", "Response cache lookups by result (hit, miss, bypass).", ("endpoint", "result"), registry=r)
        self.decisions = Counter("gateway_routing_decisions", "Routing decisions by the rule that decided and the primary's hosting.", ("model", "rule", "hosting"), registry=r)
        self.dropped = Counter("gateway_routing_dropped_candidates", "Candidate deployments dropped by the engine, by reason.", ("deployment", "reason"), registry=r)
        self.retries = Counter("gateway_retries", "Retries of an upstream call on the same deployment.", ("deployment", "error"), registry=r)
        self.fallbacks = Counter("gateway_fallbacks", "Moves from one target to the next after a failure.", ("from_deployment", "to_deployment", "error"), registry=r)
        self.breaker_state = Gauge("gateway_breaker_state", "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.", ("deployment",), registry=r, multiprocess_mode=latest)
        self.in_flight = Gauge("gateway_in_flight_requests", "Requests being served now.", ("endpoint",), registry=r, multiprocess_mode=live)
        self.upstream_in_flight = Gauge("gateway_upstream_in_flight_requests", "Upstream calls under way per deployment.", ("deployment",), registry=r, multiprocess_mode=live)
        self.rate_limited = Counter("gateway_rate_limited_requests", "Requests refused by a rate limit.", ("team", "scope", "limit"), registry=r)
        self.budget_denied = Counter("gateway_budget_denied_requests", "Requests refused or paced because of a budget.", ("team", "action"), registry=r)
        self.budget_remaining = Gauge("gateway_budget_remaining_usd", "Budget left in the current period.", ("team", "period"), registry=r, multiprocess_mode=latest)
        self.budget_limit = Gauge("gateway_budget_limit_usd", "Configured budget per period.", ("team", "period"), registry=r, multiprocess_mode=latest)
        self.redis_errors = Counter("gateway_redis_errors", "Failed calls to Redis, by operation.", ("operation",), registry=r)
        self.redis_up = Gauge("gateway_redis_up", "1 when the shared state backend answers, 0 when degraded.", (), registry=r, multiprocess_mode=latest)
        self.policy_reloads = Counter("gateway_policy_reloads", "Policy reload attempts by result (success, failure).", ("result",), registry=r)
        self.policy_info = Gauge("gateway_policy_info", "The active policy: value 1, its name and version as labels.", ("name", "version"), registry=r, multiprocess_mode=latest)
        self.policy_loaded_at = Gauge("gateway_policy_loaded_timestamp_seconds", "When the active policy was loaded.", (), registry=r, multiprocess_mode=latest)
        self.errors = Counter("gateway_errors", "Errors returned to clients, by fault domain and kind.", ("fault", "kind", "endpoint"), registry=r)
        self.upstream_errors = Counter("gateway_upstream_errors", "Failed upstream attempts per deployment.", ("deployment", "provider", "hosting", "error"), registry=r)
        self.load_spills = Counter("gateway_load_spills", "Requests sent past a self-hosted deployment because its server's queue would break the latency SLO.", ("deployment",), registry=r)
        self.server_requests = Gauge("gateway_upstream_server_requests", "A self-hosted server's own report of its requests, by state (running, waiting).", ("deployment", "state"), registry=r, multiprocess_mode=latest)
        self.server_slots = Gauge("gateway_upstream_server_slots", "Requests a self-hosted server runs at once (its own report, or the policy's).", ("deployment",), registry=r, multiprocess_mode=latest)
        self.server_kv_cache = Gauge("gateway_upstream_kv_cache_usage_ratio", "A self-hosted server's own report of its KV-cache use (0..1).", ("deployment",), registry=r, multiprocess_mode=latest)
        self.deployment_ttft = Gauge("gateway_deployment_ttft_seconds", "The gateway's running estimate of a deployment's time to first token (what routing uses).", ("deployment",), registry=r, multiprocess_mode=latest)
        self.deployment_tps = Gauge("gateway_deployment_output_tokens_per_second", "The gateway's running estimate of a deployment's output speed per request (what routing uses).", ("deployment",), registry=r, multiprocess_mode=latest)
        self.slo_target = Gauge("gateway_latency_slo_seconds", "Latency SLO configured by a policy rule.", ("rule",), registry=r, multiprocess_mode=latest)
