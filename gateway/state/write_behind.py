"""Write-behind: gather writes that need not happen before the response, and send them together.

Cache fills and rate-limit corrections are made after a request was answered; issued one by one they
cost a Redis round trip per request each. Gathered for a few milliseconds they cost one pipelined
round trip per batch, whatever the request rate. Nothing is lost on a clean stop: ``drain`` sends what
is pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("gateway.state")


class WriteBehind(Generic[T]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[object]], delay: float = 0.01, max_items: int = 256) -> None:
        self._flush = flush
        self._delay = delay
        self._max = max_items
        self._pending: list[T] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, item: T) -> None:
        self._pending.append(item)
        if len(self._pending) >= self._max:
            self._send()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._delay, self._send)

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[T]) -> None:
        try:
            await self._flush(batch)
        except Exception:  # a failed batch must never surface in a request; the backend counted it
            log.exception("write-behind batch of %d failed", len(batch))

    async def drain(self) -> None:
        self._send()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
