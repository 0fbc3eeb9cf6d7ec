"""The proxy service: one request from validated body to upstream answer, and its accounting.

Order of work: authenticate → parse and validate → facts → routing decision → execute along the
Decision's targets → respond. Metrics, access log and spend are recorded after the response has been
handed over (a background task for plain responses, the relay's ``finally`` for streams).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from gateway.api.access_log import AccessLog
from gateway.api.auth import Identity, authenticate
from gateway.api.responses import AccountedResponse, SSEResponse, sse_error
from gateway.api.validation import parse_json_object, validate
from gateway.core.errors import GatewayError, NoRouteAvailable, PolicyDenied
from gateway.core.types import Decision, Endpoint, RequestFacts, Usage
from gateway.metrics.recorder import MetricsRecorder, Outcome
from gateway.policy.prices import request_cost
from gateway.routing.engine import decide
from gateway.routing.executor import Execution
from gateway.routing.runtime import PolicySnapshot, Runtime


@dataclass(slots=True)
class Call:
    """Per-request working state shared by the steps below."""

    endpoint: Endpoint
    request_id: str
    started: float
    identity: Identity | None = None
    facts: RequestFacts | None = None
    decision: Decision | None = None
    snapshot: PolicySnapshot | None = None


@dataclass(slots=True)
class _StreamState:
    call: Call
    execution: Execution
    strip_usage: bool
    usage: Usage | None = None
    error: GatewayError | None = None
    ok: bool = False
    ttft: float | None = None
    ended: bool = False


class ProxyService:
    def __init__(self, runtime: Runtime, recorder: MetricsRecorder, access_log: AccessLog, admin_key: str | None = None) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self.access_log = access_log
        self.admin_key = admin_key

    def route(self, endpoint: Endpoint, raw: bytes, headers: Mapping[str, str], call: Call) -> dict[str, Any]:
        """Authenticate, validate and decide; fills ``call`` and returns the parsed body."""
        snapshot = call.snapshot = self.runtime.snapshot
        call.identity = identity = authenticate(snapshot, headers.get("authorization"), self.admin_key)
        body = parse_json_object(raw)
        validate(endpoint, body)
        call.facts = facts = snapshot.facts.build(endpoint, body, headers, team=identity.team, key=identity.key)
        call.decision = decide(
            facts, snapshot.policy, self.runtime.stats.snapshot(), decision_id=call.request_id,
            policy_version=snapshot.version,
        )
        return body

    async def handle(self, endpoint: Endpoint, raw: bytes, headers: Mapping[str, str], started: float) -> Response:
        call = Call(endpoint, headers.get("x-request-id") or uuid.uuid4().hex, started)
        self.recorder.request_started(endpoint.value)
        try:
            body = self.route(endpoint, raw, headers, call)
            decision = call.decision
            assert decision is not None and call.snapshot is not None
            if decision.denied is not None:
                raise PolicyDenied(f"Request denied by policy rule `{decision.rule}`: {decision.denied}",
                                   headers=self._route_headers(call))
            if not decision.targets:
                reasons = "; ".join(f"{d.deployment}: {d.reason} ({d.detail})" for d in decision.dropped)
                raise NoRouteAvailable(f"No deployment of `{decision.model}` can serve this request: {reasons}",
                                       headers=self._route_headers(call))
            stream = body.get("stream") is True
            client_wants_usage = False
            if stream and endpoint is not Endpoint.EMBEDDINGS:
                options = body.get("stream_options") or {}
                client_wants_usage = options.get("include_usage") is True
                if not client_wants_usage:
                    # Ask upstream for usage anyway (for cost and stats); the relay drops that event again.
                    body = {**body, "stream_options": {**options, "include_usage": True}}
            snapshot = call.snapshot
            deadline = time.monotonic() + max(snapshot.policy.deployments[t.deployment].timeouts.total for t in decision.targets)
            self.recorder.decision(decision.model, decision.rule, snapshot.policy.deployments[decision.targets[0].deployment].hosting,
                                   [(d.deployment, d.reason) for d in decision.dropped])
            execution = await self.runtime.executor.execute(
                decision, snapshot.policy.deployments, snapshot.providers, endpoint=endpoint, body=body,
                stream=stream, request_id=call.request_id, deadline=deadline,
            )
        except GatewayError as exc:
            self._finish(call, "denied" if isinstance(exc, PolicyDenied) else "error", error=exc)
            exc.headers.setdefault("x-request-id", call.request_id)
            raise
        except asyncio.CancelledError:
            self._finish(call, "cancelled")  # the client went away; the upstream call was cancelled with us
            raise
        headers_out = self._route_headers(call, execution)
        if execution.stream is not None:
            state = _StreamState(call, execution, strip_usage=not client_wants_usage)
            return SSEResponse(self._relay(state), headers_out, on_close=lambda: self._end_stream(state))
        reply = execution.reply
        assert reply is not None
        return AccountedResponse(
            reply.body, headers_out, on_done=lambda: self._finish(call, "ok", execution=execution, usage=reply.usage),
        )

    async def _relay(self, st: _StreamState) -> AsyncIterator[bytes]:
        stream = st.execution.stream
        assert stream is not None
        st.ttft = time.perf_counter() - st.call.started
        try:
            yield stream.first
            async for event in stream:
                if b'"usage":{' in event or b'"usage": {' in event:
                    st.usage, is_usage_only = _usage_of(event)
                    if st.strip_usage and is_usage_only:
                        continue
                yield event
            st.ok = True
        except GatewayError as exc:
            st.error = exc
            yield sse_error(exc)
        finally:
            await self._end_stream(st)

    async def _end_stream(self, st: _StreamState) -> None:
        """Release the upstream and account for the stream, exactly once — also when the client left
        before the first event was written and the relay never ran."""
        if st.ended:
            return
        st.ended = True
        execution = st.execution
        assert execution.stream is not None
        try:
            await execution.stream.aclose()
        finally:
            usage = st.usage
            self.runtime.executor.stream_finished(
                execution, ok=st.ok, ttft_s=st.ttft or 0.0, output_tokens=usage.completion_tokens if usage else 0,
                error=st.error,
            )
            outcome = "ok" if st.ok else "error" if st.error is not None else "cancelled"  # cancelled: the client left
            self._finish(st.call, outcome, execution=execution, usage=usage, error=st.error, ttft=st.ttft)

    def _route_headers(self, call: Call, execution: Execution | None = None) -> dict[str, str]:
        headers = {"x-request-id": call.request_id, "x-gateway-decision-id": call.request_id}
        decision = call.decision
        if decision is not None:
            headers["x-gateway-rule"] = decision.rule
            headers["x-gateway-policy-version"] = decision.policy_version
        if execution is not None:
            headers["x-gateway-deployment"] = execution.deployment.name
            headers["x-gateway-hosting"] = execution.deployment.hosting
            if execution.failures:
                headers["x-gateway-fallbacks"] = ",".join(f"{f.deployment}:{f.error}" for f in execution.failures)
        return headers

    def _finish(self, call: Call, outcome: str, *, execution: Execution | None = None, usage: Usage | None = None,
                error: GatewayError | None = None, ttft: float | None = None) -> None:
        duration = time.perf_counter() - call.started
        dep = execution.deployment if execution else None
        cost = reference = 0.0
        snapshot = call.snapshot
        if usage is not None and dep is not None:
            cost = request_cost(dep, usage.prompt_tokens, usage.completion_tokens)
            ref_name = snapshot.policy.reference_model if snapshot else None
            ref = snapshot.policy.deployments.get(ref_name) if snapshot and ref_name else None
            reference = request_cost(ref, usage.prompt_tokens, usage.completion_tokens) if ref else cost
        facts = call.facts
        identity = call.identity
        o = Outcome(
            endpoint=call.endpoint.value, model=facts.model if facts else "", team=identity.team if identity else "default",
            outcome=outcome, duration_s=duration, upstream_s=execution.upstream_seconds if execution else 0.0,
            ttft_s=ttft, deployment=dep, usage=usage, cost_usd=cost, reference_cost_usd=reference,
            rule=call.decision.rule if call.decision else "default", error=error,
        )
        self.recorder.request_done(o)
        if self.access_log.enabled:
            self.access_log.write(_log_entry(call, o, execution))


def _usage_of(event: bytes) -> tuple[Usage | None, bool]:
    try:
        payload = orjson.loads(event[event.index(b"{"):])
    except (ValueError, orjson.JSONDecodeError):
        return None, False
    return Usage.from_openai(payload.get("usage")), not payload.get("choices")


def _log_entry(call: Call, o: Outcome, execution: Execution | None) -> dict[str, Any]:
    decision = call.decision
    entry: dict[str, Any] = {
        "ts": time.time(), "request_id": call.request_id, "endpoint": o.endpoint, "model": o.model,
        "team": o.team, "key": call.identity.key if call.identity else None, "outcome": o.outcome,
        "status": o.error.status if o.error else 200, "duration_ms": round(o.duration_s * 1000, 3),
        "deployment": o.deployment.name if o.deployment else None,
        "hosting": o.deployment.hosting if o.deployment else None,
        "rule": o.rule, "policy_version": decision.policy_version if decision else None,
    }
    if call.facts is not None:
        entry["data_class"] = call.facts.data_class
        entry["detected"] = list(call.facts.detected)
        entry["prompt_tokens_est"] = call.facts.prompt_tokens
    if decision is not None:
        entry["targets"] = [t.deployment for t in decision.targets]
        entry["dropped"] = [f"{d.deployment}:{d.reason}" for d in decision.dropped]
    if o.usage is not None:
        entry.update(prompt_tokens=o.usage.prompt_tokens, completion_tokens=o.usage.completion_tokens,
                     cost_usd=round(o.cost_usd, 8))
    if o.ttft_s is not None:
        entry["ttft_ms"] = round(o.ttft_s * 1000, 3)
    if execution is not None:
        entry["upstream_ms"] = round(execution.upstream_seconds * 1000, 3)
        if execution.failures:
            entry["fallbacks"] = [f"{f.deployment}:{f.error}" for f in execution.failures]
    if o.error is not None:
        entry.update(error_type=o.error.kind, fault=o.error.fault)
    return entry
