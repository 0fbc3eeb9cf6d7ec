"""What the executor hands out for a stream: the upstream stream and everything taken for it.

A stream outlives ``Executor.execute``: its upstream connection, the deployment's concurrency slot,
the breaker's half-open probe (if this call was it) and the in-flight count stay taken until the
client has read the stream or left. The lease owns them all and releases them in ``aclose``, exactly
once, the way an httpx response owns its connection: nothing else has to remember what to release.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from gateway.core.errors import GatewayError
from gateway.core.hooks import ExecutorHooks
from gateway.policy.models import Deployment
from gateway.providers.base import UpstreamStream
from gateway.routing.breaker import CircuitBreaker
from gateway.routing.saturation import ConcurrencyGate
from gateway.routing.stats import LiveStats


class StreamLease:
    __slots__ = ("deployment", "started", "_upstream", "_gate", "_breaker", "_stats", "_hooks", "_closed")

    def __init__(self, upstream: UpstreamStream, deployment: Deployment, started: float, *,
                 gate: ConcurrencyGate | None, breaker: CircuitBreaker | None, stats: LiveStats,
                 hooks: ExecutorHooks) -> None:
        self.deployment = deployment
        self.started = started
        self._upstream = upstream
        self._gate = gate
        self._breaker = breaker
        self._stats = stats
        self._hooks = hooks
        self._closed = False

    @property
    def first(self) -> bytes:
        """The first item of the stream, read before it was handed out."""
        return self._upstream.first

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._upstream.__aiter__()

    async def aclose(self, *, ok: bool, ttft_s: float = 0.0, output_tokens: int = 0,
                     error: GatewayError | None = None) -> None:
        """Close the upstream stream and release the slot, probe and in-flight count; report the outcome
        to the live statistics and the breaker. Only the first call does anything."""
        if self._closed:
            return
        self._closed = True
        name = self.deployment.name
        try:
            await self._upstream.aclose()
        finally:
            if self._gate is not None:
                self._gate.release()
            self._stats.finished(name)
            self._hooks.upstream_finished(name)
            total = time.monotonic() - self.started
            self._hooks.attempt(self.deployment, total, error)
            breaker = self._breaker
            if ok:
                self._stats.record_success(name, total * 1000, ttft_s * 1000, output_tokens)
                if breaker is not None:
                    breaker.record_success()
            elif error is not None and error.fault == "provider":
                self._stats.record_failure(name)
                if breaker is not None:
                    breaker.record_failure()
            elif breaker is not None:
                breaker.release_probe()  # ended without a verdict (the client left): let another probe through
