"""Where one shadow's result goes: the ``gateway_shadow_*`` metrics, the shared tally (for
``GET /v1/gateway/shadow`` and the shadow budget), and one access-log line (scores, never text)."""

from __future__ import annotations

import time
from typing import Any, Protocol

from gateway.core.ids import new_id
from gateway.metrics.shadow import ShadowMetrics
from gateway.shadow.compare import Scores
from gateway.shadow.job import Result
from gateway.state import ShadowCounts, ShadowTally
from gateway.state.spend import to_nanos

MICROS = 1_000_000
"""Fractions are tallied as integer millionths (exact sums across replicas)."""


class LogWriter(Protocol):
    """The pipeline's access log (``pipeline.access_log.AccessLog``): shadows write their own lines to it."""

    enabled: bool

    def write(self, entry: dict[str, Any]) -> None: ...


class ShadowRecorder:
    def __init__(self, metrics: ShadowMetrics, tally: ShadowTally, access_log: LogWriter | None) -> None:
        self.metrics = metrics
        self.tally = tally
        self.access_log = access_log
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, memoised (as ``MetricsRecorder._child``: labels are bounded by the policy)."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def record(self, result: Result) -> None:
        p = result.primary
        pair = (p.model, p.deployment.name, p.plan.deployment)
        m, c = self.metrics, self._child
        c(m.requests, *pair, result.outcome).inc()
        if result.outcome == "dropped":
            c(m.dropped, *pair, result.reason).inc()
        for dep, usd in result.spend.items():
            c(m.spend, dep).inc(usd)
        if result.outcome == "compared" and result.scores is not None:
            self._observe(pair, result, result.scores)
        self.tally.record(new_id(), ShadowCounts(pair, counters(result), {d: to_nanos(v) for d, v in result.spend.items()}))
        if self.access_log is not None and self.access_log.enabled:
            self.access_log.write(log_line(result))

    def _observe(self, pair: tuple[str, str, str], result: Result, s: Scores) -> None:
        m, c = self.metrics, self._child
        if s.tool_calls_agree is not None:
            c(m.agreement, *pair, "tool_calls").observe(float(s.tool_calls_agree))
        if s.json_agree is not None:
            c(m.agreement, *pair, "json").observe(float(s.json_agree))
        for side, valid in (("primary", s.json_valid_primary), ("shadow", s.json_valid_shadow)):
            if valid is not None:
                c(m.json_valid, *pair, side).observe(float(valid))
        if s.text_similarity is not None:
            c(m.text_similarity, *pair, s.similarity).observe(s.text_similarity)
        if s.length_ratio is not None:
            c(m.length_ratio, *pair).observe(s.length_ratio)
        for side, refused in (("primary", s.refusal_primary), ("shadow", s.refusal_shadow)):
            c(m.refusals, *pair, side).inc(int(refused))  # 0 too: "no refusal yet" is a value, not a gap
        c(m.latency, *pair, "primary").observe(result.primary.seconds)
        if result.shadow_seconds is not None:
            c(m.latency, *pair, "shadow").observe(result.shadow_seconds)
        c(m.cost, *pair, "primary").inc(result.primary_cost_usd)
        c(m.cost, *pair, "shadow").inc(result.shadow_cost_usd)


def counters(result: Result) -> dict[str, int]:
    """The tally's integer counters for one result (``report.pair_report`` reads them back)."""
    c: dict[str, int] = {"requests": 1, result.outcome: 1}
    if result.outcome == "dropped":
        c[f"dropped:{result.reason}"] = 1
    if result.outcome == "failed":
        c[f"failed:{result.reason}"] = 1
    s = result.scores
    if result.outcome != "compared" or s is None:
        return c
    if s.tool_calls_agree is not None:
        c["tool_cases"], c["tool_agree"] = 1, int(s.tool_calls_agree)
    if s.json_valid_shadow is not None or s.json_valid_primary is not None:
        c["json_cases"] = 1
        c["json_valid_primary"] = int(bool(s.json_valid_primary))
        c["json_valid_shadow"] = int(bool(s.json_valid_shadow))
    if s.json_agree is not None:
        c["json_checked"], c["json_agree"] = 1, int(s.json_agree)
    if s.text_similarity is not None:
        c["text_cases"], c["text_similarity_micros"] = 1, round(s.text_similarity * MICROS)
    if s.length_ratio is not None:
        c["length_cases"], c["length_ratio_micros"] = 1, round(s.length_ratio * MICROS)
    c["refusals_primary"], c["refusals_shadow"] = int(s.refusal_primary), int(s.refusal_shadow)
    p = result.primary
    c["primary_us"] = round(p.seconds * MICROS)
    c["shadow_us"] = round((result.shadow_seconds or 0.0) * MICROS)
    if p.ttft_seconds is not None:
        c["ttft_cases"], c["primary_ttft_us"] = 1, round(p.ttft_seconds * MICROS)
    c["primary_nanos"] = to_nanos(result.primary_cost_usd)
    c["shadow_nanos"] = to_nanos(result.shadow_cost_usd)
    return c


def log_line(result: Result) -> dict[str, Any]:
    p = result.primary
    entry: dict[str, Any] = {
        "ts": time.time(), "event": "shadow", "request_id": p.request_id, "model": p.model,
        "primary": p.deployment.name, "shadow": p.plan.deployment, "outcome": result.outcome,
    }
    if result.reason:
        entry["reason"] = result.reason
    if result.outcome == "compared" and result.scores is not None:
        entry.update(result.scores.to_log())
        entry.update(primary_ms=round(p.seconds * 1000, 3), shadow_ms=round((result.shadow_seconds or 0) * 1000, 3),
                     primary_cost_usd=round(result.primary_cost_usd, 8), shadow_cost_usd=round(result.shadow_cost_usd, 8))
        if p.ttft_seconds is not None:
            entry["primary_ttft_ms"] = round(p.ttft_seconds * 1000, 3)
    if result.shadow_usage is not None:
        entry.update(shadow_prompt_tokens=result.shadow_usage.prompt_tokens,
                     shadow_completion_tokens=result.shadow_usage.completion_tokens)
    if result.spend:
        entry["spend_usd"] = {d: round(v, 8) for d, v in result.spend.items()}
    return entry
