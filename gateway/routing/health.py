"""Optional active health checks: probe upstreams in the background and feed their breakers.

A deployment with ``health_check`` is probed every ``interval_seconds``; ``failures_to_open``
failed probes in a row open its breaker (the engine then drops it as "unhealthy"). A passing probe
closes only a breaker that the probes themselves opened: a breaker opened by failing real traffic
recovers through its own half-open probe, since a server can answer ``/models`` and still fail
completions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from gateway.policy.models import Deployment
from gateway.providers.base import Provider
from gateway.routing.breaker import BreakerState, CircuitBreaker

log = logging.getLogger("gateway.health")


class HealthChecker:
    def __init__(self, breakers: Mapping[str, CircuitBreaker]) -> None:
        self._breakers = breakers
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._opened_by_probe: set[str] = set()

    def restart(self, deployments: Mapping[str, Deployment], providers: Callable[[], Mapping[str, Provider]]) -> None:
        """(Re)start probes for the deployments that ask for them; stop the others."""
        self.stop()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (start-up): the app calls restart again from its lifespan
        for name, dep in deployments.items():
            if dep.health_check is not None:
                self._tasks[name] = loop.create_task(self._probe_loop(dep, providers))

    async def _probe_loop(self, dep: Deployment, providers: Callable[[], Mapping[str, Provider]]) -> None:
        assert dep.health_check is not None
        failures = 0
        while True:
            await asyncio.sleep(dep.health_check.interval_seconds)
            provider = providers().get(dep.name)
            if provider is None:
                return
            try:
                async with asyncio.timeout(min(5.0, dep.health_check.interval_seconds)):
                    ok = await provider.check_health()
            except TimeoutError:
                ok = False
            self.observe(dep.name, ok, failures_to_open=dep.health_check.failures_to_open, failures=failures)
            failures = 0 if ok else failures + 1

    def observe(self, name: str, ok: bool, *, failures_to_open: int, failures: int) -> None:
        breaker = self._breakers.get(name)
        if breaker is None:
            return
        if ok:
            if name in self._opened_by_probe:
                self._opened_by_probe.discard(name)
                breaker.force_close()
                log.info("deployment %s passes health checks again", name)
        elif failures + 1 >= failures_to_open and breaker.state is not BreakerState.OPEN:
            self._opened_by_probe.add(name)
            breaker.force_open()
            log.warning("deployment %s failed %d health checks: breaker opened", name, failures + 1)

    def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
