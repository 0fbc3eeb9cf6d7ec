"""Per-deployment concurrency limits: a slot per in-flight upstream call.

When a deployment is full, the executor either spills to the next target at once or, if the
deployment allows it (``queue_timeout_ms``), waits briefly for a free slot first. Requests never
pile up on a saturated self-hosted server.

A released slot is handed straight to the oldest waiter (FIFO), the way ``asyncio.Semaphore`` wakes
its waiters. A hand-over can race the waiter's own timeout or cancellation: the waiter then finds its
future already holding the slot. It keeps the slot when it timed out (the wait succeeded after all)
and passes it on when it was cancelled, so no race ever loses or duplicates a slot. The limit can be
changed while calls are in flight (policy reload); calls already admitted keep their slots.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ConcurrencyGate:
    __slots__ = ("_limit", "_in_use", "_waiters")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = value
        while self._waiters and self._in_use < self._limit:
            self._hand_over()

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def try_acquire(self) -> bool:
        if self._in_use < self._limit and not self.waiting:
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
            async with asyncio.timeout(wait_seconds):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return True  # handed a slot in the same instant the wait ran out: it is ours
            return False
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot nobody will use: pass it on
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
                self._waiters.remove(waiter)
        return True  # the releaser handed its slot over: _in_use already counts it

    def release(self) -> None:
        self._in_use = max(0, self._in_use - 1)
        if self._in_use < self._limit:
            self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_use += 1
                waiter.set_result(None)
                return
