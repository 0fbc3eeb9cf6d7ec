"""The shadow report (``GET /v1/gateway/shadow``): a period's tallied counters turned into rates. Pure.

Per (model, primary, shadow) pair:

- ``requests``: sampled requests whose primary answered, every one accounted as ``compared``,
  ``failed`` (the shadow call failed; ``failures`` by error kind) or ``dropped`` (never sent; ``drops``
  by reason);
- ``tool_call_agreement``: share of the compared requests with tools (``tool_call_requests``) whose
  two answers made the same calls with equal arguments;
- ``json_agreement``: share of the compared JSON requests (``json_requests``, those whose verdict
  could be reached) where the shadow's JSON was valid and equal to the primary's; ``json_valid_primary``
  and ``json_valid_shadow``: each side's share of valid JSON answers;
- ``text_similarity_mean`` over the text answers (``text_requests``), ``length_ratio_mean``;
- ``refusal_rate_primary`` / ``refusal_rate_shadow`` over the compared requests;
- ``latency_ratio``: the shadow's total time over the primary's, summed over compared requests (a ratio of
  means, so one slow answer weighs by its time, not by one vote); the means of each and the primary's
  mean time to first token (streams);
- ``cost_ratio``: what the shadow answers cost over what the primary answers cost (ratio of sums).

A rate whose denominator is 0 is ``null``: no evidence, which is not the same as 0.
"""

from __future__ import annotations

from typing import Any

from gateway.state import ShadowTallyReport
from gateway.state.spend import NANOS_PER_USD

MICROS = 1_000_000


def shadow_report(tally: ShadowTallyReport, *, model: str | None = None,
                  budget_daily_usd: float | None = None) -> dict[str, Any]:
    pairs = [pair_report(key, counters) for key, counters in sorted(tally.pairs.items())
             if model is None or key[0] == model]
    spend = {dep: round(n / NANOS_PER_USD, 8) for dep, n in sorted(tally.spend.items())}
    return {
        "period": tally.period, "date": tally.date, "model": model, "pairs": pairs,
        "spend_usd": spend, "spend_total_usd": round(sum(tally.spend.values()) / NANOS_PER_USD, 8),
        "daily_budget_usd": budget_daily_usd,
    }


def pair_report(key: tuple[str, str, str], c: dict[str, int]) -> dict[str, Any]:
    model, primary, shadow = key
    compared = c.get("compared", 0)
    return {
        "model": model, "primary": primary, "shadow": shadow,
        "requests": c.get("requests", 0), "compared": compared, "failed": c.get("failed", 0),
        "dropped": c.get("dropped", 0),
        "drops": _prefixed(c, "dropped:"), "failures": _prefixed(c, "failed:"),
        "tool_call_requests": c.get("tool_cases", 0),
        "tool_call_agreement": _share(c.get("tool_agree", 0), c.get("tool_cases", 0)),
        "json_requests": c.get("json_checked", 0),
        "json_agreement": _share(c.get("json_agree", 0), c.get("json_checked", 0)),
        "json_valid_primary": _share(c.get("json_valid_primary", 0), c.get("json_cases", 0)),
        "json_valid_shadow": _share(c.get("json_valid_shadow", 0), c.get("json_cases", 0)),
        "text_requests": c.get("text_cases", 0),
        "text_similarity_mean": _share(c.get("text_similarity_micros", 0), c.get("text_cases", 0) * MICROS),
        "length_ratio_mean": _share(c.get("length_ratio_micros", 0), c.get("length_cases", 0) * MICROS),
        "refusal_rate_primary": _share(c.get("refusals_primary", 0), compared),
        "refusal_rate_shadow": _share(c.get("refusals_shadow", 0), compared),
        "latency_ratio": _share(c.get("shadow_us", 0), c.get("primary_us", 0)),
        "primary_latency_ms_mean": _share(c.get("primary_us", 0), compared * 1000, digits=3),
        "shadow_latency_ms_mean": _share(c.get("shadow_us", 0), compared * 1000, digits=3),
        "primary_ttft_ms_mean": _share(c.get("primary_ttft_us", 0), c.get("ttft_cases", 0) * 1000, digits=3),
        "cost_ratio": _share(c.get("shadow_nanos", 0), c.get("primary_nanos", 0)),
        "primary_cost_usd": round(c.get("primary_nanos", 0) / NANOS_PER_USD, 8),
        "shadow_cost_usd": round(c.get("shadow_nanos", 0) / NANOS_PER_USD, 8),
    }


def _share(part: int, whole: int, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def _prefixed(c: dict[str, int], prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): v for k, v in sorted(c.items()) if k.startswith(prefix)}
