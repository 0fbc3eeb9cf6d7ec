"""The executor: try the Decision's targets in order, with retries, breakers and saturation spill.

Only targets the Decision lists are ever called, so a request restricted to self-hosted deployments
can never fall back to a vendor. For each target: breaker, server queue and concurrency checks, then the provider
call under ``tenacity`` (retryable errors only, exponential backoff with full jitter, ``Retry-After``
honoured, bounded by attempts and the request deadline), then the next target. A stream counts as
succeeded once its first event arrived: after that the client owns it and nothing is retried.

The server queue check repeats the engine's load-aware estimate with this moment's numbers: requests
that arrive together are decided on one statistics snapshot, but each call started since moves the
estimate of the server's queue, so the ones beyond its free slots spill at once (``queue_over_slo``)
to a later target expected to meet the latency SLO.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from gateway.core.errors import (
    GatewayError,
    NoRouteAvailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from gateway.core.hooks import ExecutorHooks
from gateway.core.types import Decision, Endpoint, Target
from gateway.policy.models import Deployment
from gateway.providers.base import Provider, Timeouts, UpstreamCall, UpstreamReply
from gateway.routing.breaker import CircuitBreaker
from gateway.routing.lease import StreamLease
from gateway.routing.queueing import queue_wait_ms
from gateway.routing.saturation import ConcurrencyGate
from gateway.routing.stats import LiveStats


@dataclass(slots=True)
class Attempted:
    deployment: str
    error: str
    """Bounded error name (``UpstreamTimeout``, ``breaker_open``): the header and the access log carry it."""
    detail: str = ""
    """What happened, in the gateway's own words (``timed out``): the client's error message carries it."""

    def __str__(self) -> str:
        return f"{self.deployment}:{self.error}"


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What one target is sent: the API it is called on and the body, already in that API's shape."""

    endpoint: Endpoint
    body: dict[str, Any]
    note: str = ""
    """What a translation to the target's API dropped or clamped (for a header and the access log)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Client headers the target's API reads (``anthropic-version``, ``anthropic-beta``)."""


RequestFor = Callable[[Deployment], UpstreamRequest]
"""Builds the request for one target; may raise ``InvalidRequest`` when the target cannot take it."""


def passthrough(endpoint: Endpoint, body: dict[str, Any]) -> RequestFor:
    """Targets get the client's body on the client's API (model id and output cap set per target)."""
    return lambda dep: UpstreamRequest(endpoint, body_for(dep, body, endpoint))


@dataclass(slots=True)
class Execution:
    deployment: Deployment
    request: UpstreamRequest | None = None
    """What the target that answered was sent."""
    reply: UpstreamReply | None = None
    stream: StreamLease | None = None
    """A stream owns its connection, slot, probe and in-flight count until ``stream.aclose``."""
    upstream_seconds: float = 0.0
    started: float = 0.0
    failures: list[Attempted] = field(default_factory=list)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, GatewayError) and exc.retryable


class Executor:
    def __init__(self, stats: LiveStats, breakers: Mapping[str, CircuitBreaker],
                 gates: Mapping[str, ConcurrencyGate] | None = None, hooks: ExecutorHooks | None = None,
                 rng: random.Random | None = None) -> None:
        self._stats = stats
        self._breakers = breakers
        self._gates = gates if gates is not None else {}
        self._hooks = hooks or ExecutorHooks()
        self._rng = rng or random.Random()

    async def execute(
        self,
        decision: Decision,
        deployments: Mapping[str, Deployment],
        providers: Mapping[str, Provider],
        *,
        request_for: RequestFor,
        stream: bool,
        request_id: str,
        deadline: float,
    ) -> Execution:
        failures: list[Attempted] = []
        last: GatewayError | None = None
        previous: str | None = None
        for name in decision.spilled:
            self._hooks.load_spill(name)
        for index, target in enumerate(decision.targets):
            dep = deployments[target.deployment]
            if previous is not None and last is not None:
                self._hooks.fallback(previous, dep.name, last.kind)
            previous = dep.name
            # Raises InvalidRequest when the request cannot be put in this target's shape (the caller's doing).
            request = request_for(dep)
            if self._queues_past_slo(decision, index, target):
                last = UpstreamUnavailable(f"deployment {dep.name!r} would queue past the latency SLO",
                                           code="queue_over_slo")
                failures.append(Attempted(dep.name, "queue_over_slo", last.summary()))
                if dep.name not in decision.spilled:
                    self._hooks.load_spill(dep.name)
                continue
            breaker = self._breakers.get(dep.name)
            if breaker is not None and not breaker.allow():
                last = UpstreamUnavailable(f"deployment {dep.name!r} is unhealthy (circuit open)", code="breaker_open")
                failures.append(Attempted(dep.name, "breaker_open", last.summary()))
                continue
            gate = self._gates.get(dep.name)
            if gate is not None and not await gate.acquire(dep.queue_timeout_ms / 1000):
                if breaker is not None:
                    breaker.release_probe()
                last = UpstreamUnavailable(f"deployment {dep.name!r} is at its concurrency limit", code="saturated")
                failures.append(Attempted(dep.name, "saturated", last.summary()))
                continue
            remaining = deadline - time.monotonic()
            call = UpstreamCall(request.endpoint, request.body, stream, request_id, _timeouts(dep, remaining),
                                dict(request.headers))
            try:
                execution = await self._with_retries(dep, providers[dep.name], call, deadline, gate)
            except GatewayError as exc:
                if gate is not None:
                    gate.release()
                failures.append(Attempted(dep.name, exc.kind, exc.summary()))
                last = exc
                if not exc.tries_next_target:
                    # About the request itself: another deployment would refuse it too. The upstream's
                    # own message says what to fix; the targets tried before are recorded.
                    exc.failures = tuple(str(f) for f in failures[:-1])
                    raise
                if deadline - time.monotonic() <= 0:
                    break
                continue
            except BaseException:
                if gate is not None:
                    gate.release()
                raise
            if execution.stream is None and gate is not None:
                gate.release()  # a stream's lease holds the slot until the stream ends
            execution.failures = failures
            execution.request = request
            return execution
        if last is None:
            raise NoRouteAvailable("no deployment could be tried before the request's deadline")
        raise _every_target_failed(last, failures, len(decision.targets))

    def _queues_past_slo(self, decision: Decision, index: int, target: Target) -> bool:
        """Would this request wait for a slot past the SLO, with a later target expected to meet it?"""
        slo = decision.latency_slo_ms
        if slo is None or target.expected_latency_ms <= 0:
            return False
        estimate = self._stats.server_estimate(target.deployment)
        if estimate is None or not any(0 < t.expected_latency_ms <= slo for t in decision.targets[index + 1:]):
            return False
        load, busy = estimate
        service = target.expected_latency_ms - target.queue_ms
        measured = self._stats.snapshot().get(target.deployment)
        mean = measured.latency_ms if measured is not None and measured.latency_ms is not None else service
        wait = queue_wait_ms(busy, load.slots, mean, running=load.running, waiting=load.waiting)
        return service + wait > slo

    async def _with_retries(self, dep: Deployment, provider: Provider, call: UpstreamCall, deadline: float,
                            gate: ConcurrencyGate | None) -> Execution:
        # The first attempt runs bare: building a retry controller for every request would cost the
        # hot path for the rare request that fails. tenacity takes over from the first failure.
        try:
            return await self._attempt(dep, provider, call, deadline, gate)
        except GatewayError as exc:
            if not exc.retryable or dep.retry.attempts < 2:
                raise
            first = exc
        self._hooks.retry(dep, first)
        await asyncio.sleep(self._delay(dep, 1, first, deadline))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(dep.retry.attempts - 1),
            wait=lambda state: self._delay(dep, state.attempt_number + 1, _error_of(state), deadline),
            retry=retry_if_exception(_retryable),
            reraise=True,
            before_sleep=lambda state: self._hooks.retry(dep, _error_of(state)),
        )
        return await retrying(self._attempt, dep, provider, call, deadline, gate)

    def _delay(self, dep: Deployment, attempt: int, exc: BaseException | None, deadline: float) -> float:
        """Full-jitter exponential backoff; a longer Retry-After wins (capped); never past the deadline."""
        cap = dep.retry.backoff_max_ms / 1000
        delay = self._rng.uniform(0, min(cap, dep.retry.backoff_initial_ms / 1000 * 2 ** (attempt - 1)))
        if isinstance(exc, UpstreamRateLimited) and exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, cap))
        if delay >= deadline - time.monotonic():
            raise exc or UpstreamUnavailable("deadline reached")  # no time to wait: move on
        return delay

    async def _attempt(self, dep: Deployment, provider: Provider, call: UpstreamCall, deadline: float,
                       gate: ConcurrencyGate | None) -> Execution:
        call.timeouts = _timeouts(dep, deadline - time.monotonic())
        breaker = self._breakers.get(dep.name)
        stats = self._stats
        started = time.monotonic()
        stats.started(dep.name)
        self._hooks.upstream_started(dep.name)
        try:
            if call.stream:
                upstream = await provider.open_stream(call)
                lease = StreamLease(upstream, dep, started, gate=gate, breaker=breaker, stats=stats, hooks=self._hooks)
                execution = Execution(dep, stream=lease, started=started)
            else:
                reply = await provider.complete(call)
                execution = Execution(dep, reply=reply, started=started)
        except GatewayError as exc:
            stats.finished(dep.name)
            self._hooks.upstream_finished(dep.name)
            seconds = time.monotonic() - started
            self._hooks.attempt(dep, seconds, exc)
            if isinstance(exc, UpstreamError) and exc.fault == "provider":
                stats.record_failure(dep.name)
                if breaker is not None:
                    breaker.record_failure()
            elif breaker is not None:
                breaker.release_probe()
            raise
        except BaseException:
            stats.finished(dep.name)
            self._hooks.upstream_finished(dep.name)
            if breaker is not None:
                breaker.release_probe()
            raise
        execution.upstream_seconds = time.monotonic() - started
        if not call.stream:
            stats.finished(dep.name)
            self._hooks.upstream_finished(dep.name)
            usage = execution.reply.usage if execution.reply else None
            stats.record_success(dep.name, execution.upstream_seconds * 1000, None, usage.completion_tokens if usage else 0)
            self._hooks.attempt(dep, execution.upstream_seconds, None)
            if breaker is not None:
                breaker.record_success()
        return execution


def _every_target_failed(last: GatewayError, failures: list[Attempted], targets: int) -> GatewayError:
    """The last error (its status, type and Retry-After stand), restated to name every failed target
    in the gateway's words: an upstream's or a library's text (reprs, addresses) never reaches the client."""
    listed = "; ".join(f"{f.deployment}: {f.detail or f.error}" for f in failures)
    untried = targets - len(failures)
    tail = f" ({untried} more not tried: the request's deadline passed)" if untried > 0 else ""
    if len(failures) == 1 and not tail:
        last.restate(f"The only target failed: {listed}.")
    else:
        last.restate(f"All {len(failures)} targets tried failed: {listed}.{tail}")
    last.failures = tuple(str(f) for f in failures)
    return last


def _error_of(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens")


def body_for(dep: Deployment, body: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    """The body as ``dep`` receives it: its model id, and never more output tokens than its cap."""
    out = {**body, "model": dep.model}
    cap = dep.max_output_tokens
    if cap is None or endpoint is Endpoint.EMBEDDINGS:
        return out
    asked = [name for name in _OUTPUT_FIELDS if isinstance(out.get(name), int)]
    for name in asked:
        out[name] = min(out[name], cap)
    if not asked:
        out["max_completion_tokens" if dep.type == "openai" and endpoint is Endpoint.CHAT else "max_tokens"] = cap
    return out


def _timeouts(dep: Deployment, remaining: float) -> Timeouts:
    return Timeouts.bounded(dep.timeouts, remaining)
