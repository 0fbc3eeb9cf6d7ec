"""Entries recorded on the request path and written to the backend later, in batches, exactly once.

A subclass's ``record`` only puts an entry on a bounded queue (``_offer``, ``put_nowait``): the request
never waits for the backend. A background worker takes what is queued in batches (up to ``batch_size``) and hands each batch
to ``_write``; when the backend is unavailable, the same batch is retried with exponential back-off until
it goes through, so ``_write`` must be idempotent per entry (the spend and shadow scripts guard each
entry by its id). A full queue drops the entry (``dropped``); entries still queued when ``stop`` gives up
are counted in ``lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from gateway.state.errors import BackendUnavailable

T = TypeVar("T")


class QueuedWriter(ABC, Generic[T]):
    """Subclasses name what they write (``what``, for the log; ``task_name``, for the worker) and write
    a batch in ``_write``."""

    what: ClassVar[str]
    task_name: ClassVar[str]

    def __init__(self, *, log: logging.Logger, max_queue: int, batch_size: int, retry_initial: float,
                 retry_max: float) -> None:
        self._log = log
        self._queue: asyncio.Queue[T] = asyncio.Queue(max_queue)
        self._batch_size = batch_size
        self._retry = (retry_initial, retry_max)
        self._worker: asyncio.Task[None] | None = None
        self.dropped = 0
        self.lost = 0
        self.retries = 0

    @abstractmethod
    async def _write(self, batch: list[T]) -> None:
        """Write ``batch``; raise ``BackendUnavailable`` to have the same batch retried."""

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _offer(self, entry: T) -> bool:
        """Queue ``entry``; never blocks. False when the queue was full (counted in ``dropped``)."""
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    async def start(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)

    async def drain(self) -> None:
        """Wait until everything queued so far has been written (tests, shutdown)."""
        await self._queue.join()

    async def stop(self, flush_seconds: float = 5.0) -> None:
        """Write what is queued (up to ``flush_seconds``), then stop the worker."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(flush_seconds):
                await self._queue.join()
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        self.lost += self._queue.qsize()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._flush(batch)
            except asyncio.CancelledError:
                self.lost += len(batch)
                raise
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _flush(self, batch: list[T]) -> None:
        delay, most = self._retry
        while True:
            try:
                await self._write(batch)
                return
            except BackendUnavailable as exc:
                self.retries += 1
                if self.retries == 1 or self.retries % 100 == 0:
                    self._log.warning("%s not recorded yet (%s); retrying %d entries",
                                      self.what, exc.reason, len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, most)
