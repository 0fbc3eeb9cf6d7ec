"""Share live statistics and breaker states between replicas through the state backend (Redis).

Every ``interval`` seconds each process publishes its own EWMAs and open breakers, then reads the
merged view of all live processes into ``LiveStats``. Without it, each replica would learn latencies
on its own and rank deployments differently.

Self-hosted servers' load reports travel the same way: ``owns`` picks, by rendezvous hashing over the
processes that published lately, the one process that polls each server; the others take its readings
from the merged view. A process joining or leaving moves only the servers it owned.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

from gateway.routing.breaker import BreakerState
from gateway.routing.runtime import Runtime
from gateway.state import StateService

log = logging.getLogger("gateway.sharing")


class SharedStatsLoop:
    def __init__(self, runtime: Runtime, state: StateService, interval: float = 2.0) -> None:
        self._runtime = runtime
        self._state = state
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def owns(self, deployment: str) -> bool:
        """Whether this process polls ``deployment``'s load source (all of them before the first fetch)."""
        shared = self._state.shared_stats
        me = shared.process_id
        members = set(shared.members()) | {me}
        return max(members, key=lambda m: (_weight(deployment, m), m)) == me

    async def once(self) -> None:
        runtime = self._runtime
        open_now = [name for name, b in runtime.breakers.items() if b.state is BreakerState.OPEN]
        await self._state.shared_stats.publish(runtime.stats.export(), breakers_open=open_now)
        merged = await self._state.shared_stats.fetch(include_self=True)
        if merged:
            runtime.stats.merge_remote(merged)

    async def _loop(self) -> None:
        while True:
            try:
                await self.once()
            except Exception:  # never let statistics sharing take anything down
                log.exception("sharing live statistics failed")
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _weight(deployment: str, member: str) -> bytes:
    return hashlib.blake2b(f"{deployment}\0{member}".encode(), digest_size=8).digest()
