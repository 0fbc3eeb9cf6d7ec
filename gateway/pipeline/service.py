"""The proxy service: one request from raw body to upstream answer, for every client protocol.

Order of work: authenticate → parse and validate (the dialect) → facts → budget → routing decision →
rate limit → cache lookup → execute along the Decision's targets (each sent the request in the shape
its API takes) → respond in the client's protocol. Accounting (metrics, access log, spend, cache fill)
happens after the response was handed over (``accounting.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from gateway.core.errors import GatewayError, ModelNotFound, PolicyDenied
from gateway.core.types import Endpoint, Usage
from gateway.pipeline.accounting import Accounting
from gateway.pipeline.admission import Admission
from gateway.pipeline.auth import authenticate, credentials
from gateway.pipeline.call import Call, request_id_from
from gateway.pipeline.dialects import Dialect, Inbound, MessagesDialect
from gateway.pipeline.responses import AccountedResponse, SSEResponse
from gateway.pipeline.shadow_handoff import hand_off, wants_answer
from gateway.pipeline.stream_meters import meter_for
from gateway.pipeline.stream_relay import CachedStream, StreamRelay
from gateway.routing.engine import decide
from gateway.routing.executor import Execution
from gateway.routing.no_route import no_route_error
from gateway.routing.runtime import Runtime
from gateway.shadow.runner import ShadowRunner
from gateway.state import CacheEntry, StateService, StreamCapture, stream_from_completion

_CHAT_SHAPED = (Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS)


class ProxyService:
    def __init__(self, runtime: Runtime, state: StateService, admission: Admission, accounting: Accounting,
                 admin_key: str | None = None, shadows: ShadowRunner | None = None) -> None:
        self.runtime = runtime
        self.shadows = shadows
        self.state = state
        self.admission = admission
        self.accounting = accounting
        self.recorder = accounting.recorder
        self.admin_key = admin_key

    async def route(self, dialect: Dialect, raw: bytes, headers: Mapping[str, str], call: Call) -> Inbound:
        """Authenticate, validate, check the budget and decide; fills ``call`` and returns the parsed request."""
        snapshot = call.snapshot = self.runtime.snapshot
        call.identity = identity = authenticate(snapshot, credentials(headers), self.admin_key)
        inbound = dialect.parse(raw, headers)
        facts = snapshot.facts.build(dialect.endpoint, inbound.body, headers, team=identity.team, key=identity.key,
                                     chat_body=inbound.chat)
        call.facts = facts = await self.admission.budget(call, facts)
        call.decision = decide(
            facts, snapshot.policy, self.runtime.stats.snapshot(), decision_id=call.request_id,
            policy_version=snapshot.version,
        )
        return inbound

    async def count_tokens(self, dialect: MessagesDialect, raw: bytes, headers: Mapping[str, str]) -> int:
        """``/v1/messages/count_tokens``: authenticated like any request, for a model the caller may use,
        answered without an upstream."""
        snapshot = self.runtime.snapshot
        identity = authenticate(snapshot, credentials(headers), self.admin_key)
        model, tokens = dialect.count_tokens(raw)
        policy = snapshot.policy
        name = policy.resolve_model(model)
        team = policy.teams.get(identity.team)
        if name is None or (team is not None and team.models is not None and name not in team.models):
            raise ModelNotFound(f"The model `{model}` does not exist or you do not have access to it.", param="model")
        return tokens

    async def handle(self, dialect: Dialect, raw: bytes, headers: Mapping[str, str], started: float) -> Response:
        call = Call(dialect.endpoint, request_id_from(headers), started)
        self.recorder.request_started(dialect.endpoint.value)
        try:
            inbound = await self.route(dialect, raw, headers, call)
            decision = call.decision
            assert decision is not None and call.snapshot is not None
            if decision.denied is not None:
                raise PolicyDenied(f"Request denied by policy rule `{decision.rule}`: {decision.denied}",
                                   headers=self._route_headers(call))
            if not decision.targets:
                raise no_route_error(decision, self._route_headers(call))
            entry = await self._admit(call, inbound.body, headers)
            if entry is not None:
                return self._from_cache(call, dialect, inbound, entry)
            snapshot = call.snapshot
            deployments = snapshot.policy.deployments
            deadline = time.monotonic() + max(deployments[t.deployment].timeouts.total for t in decision.targets)
            self.recorder.decision(decision.model, decision.rule, deployments[decision.targets[0].deployment].hosting,
                                   [(d.deployment, d.reason) for d in decision.dropped])
            call.upstream_called = True
            execution = await self.runtime.executor.execute(
                decision, deployments, snapshot.providers, request_for=dialect.request_for(inbound),
                stream=inbound.stream, request_id=call.request_id, deadline=deadline,
            )
        except GatewayError as exc:
            self.accounting.finish(call, "denied" if isinstance(exc, PolicyDenied) else "error", error=exc)
            for name, value in self._route_headers(call).items():
                exc.headers.setdefault(name, value)
            if exc.failures:
                exc.headers.setdefault("x-gateway-fallbacks", ",".join(exc.failures))
            raise
        except asyncio.CancelledError:
            # The client went away and the upstream call was cancelled with us. If it had been sent, the
            # upstream worked on it for nobody: charge what was reserved for it (estimated).
            self.accounting.finish(call, "cancelled", charge=self.accounting.reserved(call) if call.upstream_called else None)
            raise
        return self._answer(call, dialect, inbound, execution)

    def _answer(self, call: Call, dialect: Dialect, inbound: Inbound, execution: Execution) -> Response:
        sent = execution.request
        assert sent is not None
        headers = self._route_headers(call, execution)
        cacheable = call.plan is not None and call.plan.write and sent.endpoint in _CHAT_SHAPED
        lease = execution.stream
        if lease is not None:
            capture = StreamCapture() if cacheable or wants_answer(self.shadows, call) else None

            def ended(relay: StreamRelay, outcome: str, usage: Usage) -> None:
                self.accounting.finish(call, outcome, execution=execution, usage=usage, error=relay.error,
                                       ttft=relay.ttft)
                if relay.ok:
                    if cacheable and capture is not None:
                        self.accounting.cache_fill(call, execution.deployment, capture.completion())
                    hand_off(self.shadows, call, dialect, inbound, execution, usage=usage, ttft=relay.ttft,
                             events=capture.events() if capture is not None else None, streamed=True)

            relay = StreamRelay(
                call, lease, meter_for(sent.endpoint, hidden_usage=dialect.hidden_usage(inbound)),
                renderer=dialect.renderer(sent, inbound, call), error_event=dialect.error_event, capture=capture,
                on_end=ended,
            )
            return SSEResponse(relay, headers)
        reply = execution.reply
        assert reply is not None
        body = dialect.reply(sent, reply.body, reply.parsed, inbound, call)

        def done() -> None:
            self.accounting.finish(call, "ok", execution=execution, usage=reply.usage)
            if cacheable:
                self.accounting.cache_fill(call, execution.deployment, reply.parsed)
            hand_off(self.shadows, call, dialect, inbound, execution, usage=reply.usage,
                     body=reply.parsed if reply.parsed is not None else reply.body, size=len(reply.body))

        return AccountedResponse(body, headers, on_done=done)

    async def _admit(self, call: Call, body: dict[str, Any], headers: Mapping[str, str]) -> CacheEntry | None:
        """Rate limit, then the cache. With both enabled on Redis their two calls leave together (the cache
        lookup is started first, as a task, so both commands share one write and one round trip); in
        process the extra task would only cost."""
        assert call.decision is not None
        if not (self.state.kind == "redis" and call.decision.cache.enabled and self.admission.limits_apply(call)):
            await self.admission.rate_limit(call)
            return await self.admission.cache_lookup(call, body, headers)
        lookup = asyncio.ensure_future(self.admission.cache_lookup(call, body, headers))
        try:
            await self.admission.rate_limit(call)
        except BaseException:
            lookup.cancel()
            raise
        return await lookup

    def _from_cache(self, call: Call, dialect: Dialect, inbound: Inbound, entry: CacheEntry) -> Response:
        headers = self._route_headers(call)
        headers["x-gateway-deployment"] = entry.deployment
        headers["x-gateway-hosting"] = entry.hosting
        done = lambda: self.accounting.finish(call, "cached", served_by=entry.deployment)  # noqa: E731
        if not inbound.stream:
            body = dialect.cached_reply(entry.completion, inbound, call, stream_events=None)
            assert isinstance(body, bytes)
            return AccountedResponse(body, headers, on_done=done)
        include_usage = not dialect.hidden_usage(inbound)
        events = dialect.cached_reply(entry.completion, inbound, call,
                                      stream_events=stream_from_completion(entry.completion, include_usage=include_usage))
        assert isinstance(events, list)
        return SSEResponse(CachedStream(events, on_close=done), headers)

    def _route_headers(self, call: Call, execution: Execution | None = None) -> dict[str, str]:
        headers = {"x-request-id": call.request_id, "x-gateway-decision-id": call.request_id}
        decision = call.decision
        if decision is not None:
            headers["x-gateway-rule"] = decision.rule
            headers["x-gateway-policy-version"] = decision.policy_version
        if call.cache_result is not None:
            headers["x-gateway-cache"] = call.cache_result
        if call.ticket is not None:
            headers.update(call.ticket.headers)
        if execution is not None:
            headers["x-gateway-deployment"] = execution.deployment.name
            headers["x-gateway-hosting"] = execution.deployment.hosting
            if execution.failures:
                headers["x-gateway-fallbacks"] = ",".join(str(f) for f in execution.failures)
            if execution.request is not None and execution.request.note:
                headers["x-gateway-translation"] = execution.request.note
        return headers
