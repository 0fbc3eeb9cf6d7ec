"""One shadow call: checked against the shadow deployment's health and load, then sent through its
provider the way the executor sends an attempt (live statistics, breaker, concurrency slot, upstream
metrics all see it: it is real load on a real deployment), once — a shadow is never retried and never
falls back.

A shadow only ever takes spare capacity: it is dropped when the deployment's breaker is not closed
(``breaker_open``), when its concurrency gate has no free slot or its server reports requests waiting
or every slot busy (``saturated``). It never waits for a slot, so it can never queue ahead of live
traffic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.core.errors import GatewayError, UpstreamError
from gateway.core.hooks import ExecutorHooks
from gateway.core.types import BreakerState
from gateway.policy.models import Deployment
from gateway.providers.base import Provider, Timeouts, UpstreamCall, UpstreamReply
from gateway.routing.runtime import Runtime
from gateway.routing.stats import DeploymentStats

_NO_STATS = DeploymentStats()


class Dropped(Exception):
    """The shadow was not sent; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Sent:
    reply: UpstreamReply
    seconds: float


def drop_reason(dep: Deployment, runtime: Runtime) -> str | None:
    breaker = runtime.breakers.get(dep.name)
    if breaker is not None and breaker.state is not BreakerState.CLOSED:
        return "breaker_open"
    if not runtime.stats.snapshot().get(dep.name, _NO_STATS).healthy:
        return "breaker_open"  # another replica's breaker, or a failed health check
    estimate = runtime.stats.server_estimate(dep.name)
    if estimate is not None:
        load, busy = estimate
        if load.waiting > 0 or (load.slots is not None and busy >= load.slots):
            return "saturated"
    return None


async def send(dep: Deployment, provider: Provider, call: UpstreamCall, runtime: Runtime,
               hooks: ExecutorHooks) -> Sent:
    """Send ``call`` to ``dep``; raises ``Dropped`` (not sent) or ``GatewayError`` (sent, and failed)."""
    reason = drop_reason(dep, runtime)
    if reason is not None:
        raise Dropped(reason)
    gate = runtime.gates.get(dep.name)
    if gate is not None and not gate.try_acquire():
        raise Dropped("saturated")
    breaker, stats = runtime.breakers.get(dep.name), runtime.stats
    call.timeouts = Timeouts.bounded(dep.timeouts)
    started = time.monotonic()
    stats.started(dep.name)
    hooks.upstream_started(dep.name)
    try:
        reply = await provider.complete(call)
    except GatewayError as exc:
        hooks.attempt(dep, time.monotonic() - started, exc)
        if isinstance(exc, UpstreamError) and exc.fault == "provider":
            stats.record_failure(dep.name)
            if breaker is not None:
                breaker.record_failure()
        raise
    finally:
        stats.finished(dep.name)
        hooks.upstream_finished(dep.name)
        if gate is not None:
            gate.release()
    seconds = time.monotonic() - started
    hooks.attempt(dep, seconds, None)
    output = reply.usage.completion_tokens if reply.usage else 0
    stats.record_success(dep.name, seconds * 1000, None, output)
    if breaker is not None:
        breaker.record_success()
    return Sent(reply, seconds)
