"""Per-deployment concurrency limits: a slot per in-flight upstream call.

When a deployment is full, the executor either spills to the next target at once or, if the
deployment allows it (``queue_timeout_ms``), waits briefly for a free slot first. Requests never
pile up on a saturated self-hosted server.
"""

from __future__ import annotations

import asyncio


class ConcurrencyGate:
    __slots__ = ("limit", "_in_use", "_waiters")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_use = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def in_use(self) -> int:
        return self._in_use

    def try_acquire(self) -> bool:
        if self._in_use < self.limit:
            self._in_use += 1
            return True
        return False

    async def acquire(self, wait_seconds: float) -> bool:
        """A slot within ``wait_seconds``, or False. FIFO among waiters."""
        if self.try_acquire():
            return True
        if wait_seconds <= 0:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, wait_seconds)
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return True  # the releaser handed its slot over: _in_use is unchanged

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)  # hand the slot to the oldest waiter
                return
        self._in_use = max(0, self._in_use - 1)
