"""After a request: metrics, the access log line, spend, rate-limit correction and cache fill.

Runs once the response has been handed to the server (see ``responses.py``). Everything that talks
to shared state is only queued here (spend, cache fills and rate corrections are written behind in
batches by ``state/``); nothing here can delay or fail a response.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.core.errors import GatewayError
from gateway.core.types import Usage
from gateway.metrics.recorder import MetricsRecorder, Outcome
from gateway.pipeline.access_log import AccessLog
from gateway.pipeline.call import Call
from gateway.policy.models import Deployment
from gateway.policy.prices import request_cost
from gateway.routing.executor import Execution
from gateway.state import StateService

_CREDENTIAL_HEADERS = frozenset(("authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"))


class Accounting:
    def __init__(self, recorder: MetricsRecorder, access_log: AccessLog, state: StateService) -> None:
        self.recorder = recorder
        self.access_log = access_log
        self.state = state

    def cache_fill(self, call: Call, dep: Deployment, completion: dict[str, Any] | None) -> None:
        plan = call.plan
        if plan is None or not plan.write or completion is None:
            return
        self.state.cache.store_later(plan, hosting=dep.hosting, deployment=dep.name, completion=completion)

    @staticmethod
    def reserved(call: Call) -> tuple[Deployment, Usage] | None:
        """What a request sent upstream but abandoned by its client is charged: its primary target and
        the tokens reserved for it (prompt estimate plus the output asked for or expected), estimated."""
        snapshot, decision, facts = call.snapshot, call.decision, call.facts
        if snapshot is None or decision is None or facts is None or not decision.targets:
            return None
        policy = snapshot.policy
        output = facts.max_output_tokens or policy.defaults.expected_output_tokens
        return policy.deployments[decision.targets[0].deployment], Usage(facts.prompt_tokens, output, estimated=True)

    def finish(self, call: Call, outcome: str, *, execution: Execution | None = None, usage: Usage | None = None,
               error: GatewayError | None = None, ttft: float | None = None, served_by: str | None = None,
               charge: tuple[Deployment, Usage] | None = None) -> None:
        """Record one finished request. ``charge``: a deployment and usage to bill when no execution
        produced an answer (a client that left while the upstream worked)."""
        duration = time.perf_counter() - call.started
        dep = execution.deployment if execution else None
        if charge is not None and dep is None:
            dep, usage = charge
        cost = reference = 0.0
        snapshot = call.snapshot
        if usage is not None and dep is not None:
            cost = request_cost(dep, usage.prompt_tokens, usage.completion_tokens)
            ref_name = snapshot.policy.reference_model if snapshot else None
            ref = snapshot.policy.deployments.get(ref_name) if snapshot and ref_name else None
            reference = request_cost(ref, usage.prompt_tokens, usage.completion_tokens) if ref else cost
        identity = call.identity
        team = identity.team if identity else "default"
        o = Outcome(
            endpoint=call.endpoint.value, model=_model_name(call), team=team,
            outcome=outcome, duration_s=duration, upstream_s=execution.upstream_seconds if execution else 0.0,
            ttft_s=ttft, deployment=dep, usage=usage, cost_usd=cost, reference_cost_usd=reference,
            rule=call.decision.rule if call.decision else "default", error=error,
            cache=call.cache_result if call.cache_result != "off" else None,  # the metric counts lookups only
        )
        self.recorder.request_done(o)
        if dep is not None and identity is not None and cost > 0:
            self.state.spend.record(call.spend_id, key=identity.key, team=team, deployment=dep.name, cost_usd=cost)
        ticket = call.ticket
        if ticket is not None and ticket.token_buckets:
            actual = usage.total_tokens if usage is not None else 0  # failed or cached: nothing was generated
            self.state.limiter.reconcile_later(ticket, actual)
        if self.access_log.enabled:
            self.access_log.write(_log_entry(call, o, execution, served_by))


def _log_entry(call: Call, o: Outcome, execution: Execution | None, served_by: str | None) -> dict[str, Any]:
    decision = call.decision
    entry: dict[str, Any] = {
        "ts": time.time(), "request_id": call.request_id, "endpoint": o.endpoint, "model": o.model,
        "team": o.team, "key": call.identity.key if call.identity else None, "outcome": o.outcome,
        "status": o.error.status if o.error else 200, "duration_ms": round(o.duration_s * 1000, 3),
        "deployment": o.deployment.name if o.deployment else served_by,
        "hosting": o.deployment.hosting if o.deployment else None,
        "rule": o.rule, "policy_version": decision.policy_version if decision else None,
        "cache": call.cache_result,
    }
    facts = call.facts
    if facts is not None:
        # The request facts routing decided on, so `gateway policy simulate` can replay this line through
        # another policy. Never prompt text; headers only those rules name, never credentials.
        entry.update(
            data_class=facts.data_class, detected=list(facts.detected), prompt_tokens_est=facts.prompt_tokens,
            max_output_tokens=facts.max_output_tokens, features=sorted(facts.features), stream=facts.stream,
        )
        headers = {k: v for k, v in facts.headers.items() if k not in _CREDENTIAL_HEADERS}
        if headers:
            entry["headers"] = headers
        named = call.snapshot.facts.metadata_keys if call.snapshot is not None else ()
        metadata = {k: str(facts.metadata[k])[:64] for k in named if k in facts.metadata}
        if metadata:
            entry["metadata"] = metadata
        if facts.budget_pacing:
            entry["budget_pacing"] = True
    if decision is not None:
        entry["targets"] = [t.deployment for t in decision.targets]
        entry["dropped"] = [f"{d.deployment}:{d.reason}" for d in decision.dropped]
        if decision.shadow is not None and decision.shadow.sampled:
            entry["shadow"] = decision.shadow.deployment  # what became of it: the shadow's own line
    if o.usage is not None:
        entry.update(prompt_tokens=o.usage.prompt_tokens, completion_tokens=o.usage.completion_tokens,
                     cost_usd=round(o.cost_usd, 8))
        if o.usage.estimated:
            entry["usage_estimated"] = True
    if o.ttft_s is not None:
        entry["ttft_ms"] = round(o.ttft_s * 1000, 3)
    if execution is not None:
        entry["upstream_ms"] = round(execution.upstream_seconds * 1000, 3)
        if execution.failures:
            entry["fallbacks"] = [str(f) for f in execution.failures]
    elif o.error is not None and o.error.failures:
        entry["fallbacks"] = list(o.error.failures)  # every target failed: which, and how
    if o.error is not None:
        entry.update(error_type=o.error.kind, fault=o.error.fault)
    return entry


def _model_name(call: Call) -> str:
    """The policy's model name (an alias a client used resolves to it), else the name asked for."""
    if call.decision is not None:
        return call.decision.model
    return call.facts.model if call.facts is not None else ""
