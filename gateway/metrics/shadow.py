"""Shadow evaluation metrics (``gateway_shadow_*``), on the registry the gateway's other metrics use.

Labels are bounded by the policy: ``model`` is a policy model name, ``primary`` and ``shadow`` are
deployments of the policy, ``reason``, ``kind``, ``side`` and ``outcome`` come from small fixed sets.
A comparison that is 0 or 1 (tool calls, JSON) is observed into a histogram with buckets at 0.5 and 1,
so ``sum / count`` is the agreement rate and ``bucket{le="0.5"}`` the disagreements.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.metrics.registry import LATENCY_BUCKETS, MultiprocessMode

PAIR = ("model", "primary", "shadow")
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
AGREEMENT_BUCKETS = (0.5, 1.0)
RATIO_BUCKETS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 4.0)


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry, *, multiprocess: bool = False) -> None:
        r = registry
        self.requests = Counter(
            "gateway_shadow_requests", "Sampled requests answered by their primary, by what became of the shadow: "
            "compared, failed (the shadow call failed) or dropped (never sent; see gateway_shadow_dropped_total).",
            (*PAIR, "outcome"), registry=r)
        self.dropped = Counter(
            "gateway_shadow_dropped", "Shadows not sent, by reason: saturated, breaker_open, budget, queue_full, "
            "same_deployment, shutdown, or the engine's (rule_requirement, capability_missing, ...).",
            (*PAIR, "reason"), registry=r)
        self.agreement = Histogram(
            "gateway_shadow_agreement", "Per compared pair, 1 when the two answers agree and 0 when not: kind "
            "tool_calls (same calls, equal arguments) or json (the shadow's JSON valid and equal).",
            (*PAIR, "kind"), buckets=AGREEMENT_BUCKETS, registry=r)
        self.json_valid = Histogram(
            "gateway_shadow_json_valid", "Per JSON answer, 1 when it parsed (and fit the request's schema), by side.",
            (*PAIR, "side"), buckets=AGREEMENT_BUCKETS, registry=r)
        self.text_similarity = Histogram(
            "gateway_shadow_text_similarity", "Similarity of the two text answers (0..1), by method: token_f1 or "
            "embedding_cosine.", (*PAIR, "method"), buckets=SCORE_BUCKETS, registry=r)
        self.length_ratio = Histogram(
            "gateway_shadow_length_ratio", "Tokens of the shadow's text answer per token of the primary's.",
            PAIR, buckets=RATIO_BUCKETS, registry=r)
        self.refusals = Counter(
            "gateway_shadow_refusals", "Compared answers that refused, by side (primary, shadow).",
            (*PAIR, "side"), registry=r)
        self.latency = Histogram(
            "gateway_shadow_latency_seconds", "Time to the whole answer of each side of a compared pair "
            "(side primary, shadow; the shadow is called non-streamed).", (*PAIR, "side"),
            buckets=LATENCY_BUCKETS, registry=r)
        self.cost = Counter(
            "gateway_shadow_cost_usd", "Cost of each side of the compared pairs: what the primary's answer cost, "
            "what the shadow's would have.", (*PAIR, "side"), registry=r)
        self.spend = Counter(
            "gateway_shadow_spend_usd", "What shadow evaluation cost, by deployment (shadow calls, similarity "
            "embeddings); counted against defaults.shadow.daily_budget_usd.", ("deployment",), registry=r)
        live: MultiprocessMode = "livesum" if multiprocess else "all"
        self.in_flight = Gauge("gateway_shadow_in_flight", "Shadow calls under way.", (), registry=r,
                               multiprocess_mode=live)
        self.queued = Gauge("gateway_shadow_queued", "Shadows waiting for a free place.", (), registry=r,
                            multiprocess_mode=live)
