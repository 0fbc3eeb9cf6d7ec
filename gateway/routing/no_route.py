"""The error for a decision without targets: whose doing it is decides whether asking again can help.

When a candidate was dropped because of its health (breaker open), the same request may succeed in a
moment: 503 ``no_route``, which SDKs retry. When every candidate was dropped because of the request
itself (an endpoint, a capability, a prompt too long for every window, a rule's requirement, a price
cap), asking again cannot help: a 400 ``invalid_request_error`` that SDKs do not retry, its ``code``
naming why and its message listing each candidate and the reason it was dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.errors import CONTEXT_LENGTH_EXCEEDED, GatewayError, NoRouteAvailable, NoRouteForRequest
from gateway.core.types import Decision

_HEALTH_REASONS = frozenset(("unhealthy",))
_POLICY_REASONS = frozenset(("rule_requirement", "over_price"))
# engine reason → (error code, the request parameter to blame)
_CODES: dict[str, tuple[str, str | None]] = {
    "context_too_small": (CONTEXT_LENGTH_EXCEEDED, "messages"),
    "capability_missing": ("unsupported_capability", None),
    "endpoint_unsupported": ("unsupported_endpoint", "model"),
    "rule_requirement": ("no_compliant_deployment", None),
    "over_price": ("over_price_limit", None),
}


def no_route_error(decision: Decision, headers: Mapping[str, str] | None = None) -> GatewayError:
    reasons = "; ".join(f"{d.deployment}: {d.reason} ({d.detail})" for d in decision.dropped)
    message = f"No deployment of `{decision.model}` can serve this request: {reasons or 'none left'}"
    kinds = {d.reason for d in decision.dropped}
    if not kinds or kinds & _HEALTH_REASONS:
        return NoRouteAvailable(f"{message}. Try again shortly.", headers=dict(headers or {}))
    code, param = _CODES.get(next(iter(kinds)), ("no_route_for_request", None)) if len(kinds) == 1 else (
        "no_route_for_request", None)
    error = NoRouteForRequest(f"{message}.", code=code, param=param, headers=dict(headers or {}))
    if kinds <= _POLICY_REASONS:
        error.fault = "policy"  # the request is fine; the policy forbids every candidate for it
    return error
