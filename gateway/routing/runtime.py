"""The live routing state of one process: the active policy snapshot, providers, stats and breakers.

A ``PolicySnapshot`` is immutable once built; installing a new policy swaps one reference, so a request
that started on the old snapshot finishes on it. Providers whose deployment did not change are carried
over (keeping their warm connection pools); the others are closed after a grace period. Breakers and
live stats are keyed by deployment name and survive reloads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.core.hooks import ExecutorHooks
from gateway.policy.loader import LoadedPolicy
from gateway.policy.models import ApiKey, Deployment, Policy
from gateway.providers.base import Provider
from gateway.providers.registry import ProviderContext, build_provider
from gateway.routing.breaker import BreakerState, CircuitBreaker
from gateway.routing.executor import Executor
from gateway.routing.facts import FactsBuilder
from gateway.routing.health import HealthChecker
from gateway.routing.load_poller import LoadPoller, ReadingHook
from gateway.routing.saturation import ConcurrencyGate
from gateway.routing.stats import LiveStats

log = logging.getLogger("gateway.runtime")


@dataclass(frozen=True)
class PolicySnapshot:
    loaded: LoadedPolicy
    providers: dict[str, Provider]
    facts: FactsBuilder
    keys_by_hash: dict[str, ApiKey]
    keys_by_name: dict[str, ApiKey]
    loaded_at: float = field(default_factory=time.time)

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @property
    def version(self) -> str:
        return self.loaded.version


class Runtime:
    def __init__(
        self,
        context: ProviderContext | None = None,
        hooks: ExecutorHooks | None = None,
        on_breaker_change: Callable[[str, BreakerState], None] | None = None,
        provider_grace: float = 60.0,
        on_load_reading: ReadingHook | None = None,
    ) -> None:
        self.context = context or ProviderContext()
        self.stats = LiveStats()
        self.breakers: dict[str, CircuitBreaker] = {}
        self.gates: dict[str, ConcurrencyGate] = {}
        self.executor = Executor(self.stats, self.breakers, self.gates, hooks)
        self.health = HealthChecker(self.breakers)
        self.load = LoadPoller(self.stats, on_load_reading)
        self._on_breaker_change = on_breaker_change
        self._grace = provider_grace
        self._snapshot: PolicySnapshot | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def snapshot(self) -> PolicySnapshot:
        if self._snapshot is None:
            raise RuntimeError("no policy installed")
        return self._snapshot

    @property
    def ready(self) -> bool:
        return self._snapshot is not None

    def install(self, loaded: LoadedPolicy) -> PolicySnapshot:
        """Build providers for ``loaded`` and make it the active policy. Raises if a provider cannot be built."""
        policy = loaded.policy
        old = self._snapshot
        providers: dict[str, Provider] = {}
        for name, dep in policy.deployments.items():
            previous = old.policy.deployments.get(name) if old else None
            if old is not None and previous == dep and name in old.providers:
                providers[name] = old.providers[name]
            else:
                providers[name] = build_provider(dep, self.context)
        snapshot = PolicySnapshot(
            loaded=loaded, providers=providers, facts=FactsBuilder(policy),
            keys_by_hash={k.sha256: k for k in policy.keys}, keys_by_name={k.name: k for k in policy.keys},
        )
        for dep in policy.deployments.values():
            self._configure_breaker(dep)
            self._configure_gate(dep)
        self._snapshot = snapshot
        self.start_health_checks()
        if old is not None:
            stale = [p for n, p in old.providers.items() if providers.get(n) is not p]
            if stale:
                self._retire(stale)
        return snapshot

    def start_health_checks(self) -> None:
        """(Re)start the background work of the active policy: health probes and server load polls."""
        if self._snapshot is not None:
            self.health.restart(self._snapshot.policy.deployments, lambda: self.snapshot.providers)
            self.load.restart(self._snapshot.policy.deployments)

    def _configure_breaker(self, dep: Deployment) -> None:
        settings = dep.breaker.model_dump()
        breaker = self.breakers.get(dep.name)
        if breaker is None:
            self.breakers[dep.name] = CircuitBreaker(dep.name, on_change=self._breaker_changed, **settings)
        else:
            breaker.configure(**settings)

    def _configure_gate(self, dep: Deployment) -> None:
        if not dep.max_concurrency:
            self.gates.pop(dep.name, None)
        elif dep.name in self.gates:
            self.gates[dep.name].limit = dep.max_concurrency  # keep the count of calls in flight
        else:
            self.gates[dep.name] = ConcurrencyGate(dep.max_concurrency)

    def _breaker_changed(self, name: str, state: BreakerState) -> None:
        self.stats.set_health(name, state is not BreakerState.OPEN)
        log.warning("circuit breaker of deployment %s is now %s", name, state.name.lower())
        if self._on_breaker_change is not None:
            self._on_breaker_change(name, state)

    def _retire(self, providers: list[Provider]) -> None:
        async def close_later() -> None:
            await asyncio.sleep(self._grace)  # requests still in flight on the old snapshot finish first
            for p in providers:
                await p.aclose()

        try:
            task = asyncio.get_running_loop().create_task(close_later())
        except RuntimeError:
            return
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        self.health.stop()
        await self.load.aclose()
        for task in list(self._retiring):
            task.cancel()
        if self._snapshot is not None:
            for provider in self._snapshot.providers.values():
                await provider.aclose()
