"""Spend accounting, off the request path: record now, count in the background, exactly once.

``SpendRecorder.record`` only puts the cost on a bounded queue (``queued_writer.QueuedWriter``; when the
queue is full the entry is dropped and counted in ``dropped``). A background worker drains the queue in
batches and hands each batch to the backend, whose Redis script counts a request id at most once (``SET NX`` on a
marker with a TTL, then ``HINCRBY`` on the day and month counters of the key, team and deployment).
When the backend fails, the same batch is retried with back-off until it goes through: a batch that
had in fact been applied before the failure is recognised by its ids and not counted twice.

Amounts are integer nano-dollars (``to_nanos``), so totals are exact sums whatever the number of
increments; floating-point ``INCRBYFLOAT`` would drift. Periods are UTC days and months.

Request ids must be unique per request and stable across retries of the same recording; a client can
choose ``x-request-id``, so do not use that alone as the id (it would merge different requests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from gateway.state.backend import SPEND_KINDS, SpendEntry, SpendKind, StateBackend
from gateway.state.errors import BackendUnavailable, StateUnavailable
from gateway.state.queued_writer import QueuedWriter

log = logging.getLogger("gateway.state.spend")

NANOS_PER_USD = 1_000_000_000


def to_nanos(cost_usd: float) -> int:
    return round(cost_usd * NANOS_PER_USD)


def periods(at: float) -> tuple[str, str]:
    """``(YYYYMMDD, YYYYMM)`` of a UNIX time, in UTC. Asked on every request: memoised per second."""
    return _periods_of_second(int(at))


@lru_cache(maxsize=4)
def _periods_of_second(second: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(second, UTC)
    return moment.strftime("%Y%m%d"), moment.strftime("%Y%m")


@dataclass(frozen=True, slots=True)
class SpendReport:
    """USD spent in one period, per key, team and deployment (admin endpoint)."""

    period: Literal["day", "month"]
    date: str
    nanos: dict[SpendKind, dict[str, int]] = field(default_factory=dict)

    def usd(self, kind: SpendKind) -> dict[str, float]:
        return {name: n / NANOS_PER_USD for name, n in self.nanos.get(kind, {}).items()}

    def to_dict(self) -> dict[str, object]:
        return {"period": self.period, "date": self.date, **{kind: self.usd(kind) for kind in SPEND_KINDS}}


class SpendRecorder(QueuedWriter[SpendEntry]):
    what = "spend"
    task_name = "gateway-spend-recorder"

    def __init__(
        self,
        backend: StateBackend,
        *,
        max_queue: int = 10_000,
        batch_size: int = 256,
        dedupe_ttl_s: int = 2 * 86_400,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(log=log, max_queue=max_queue, batch_size=batch_size, retry_initial=retry_initial,
                         retry_max=retry_max)
        self._backend = backend
        self._dedupe_ttl_s = dedupe_ttl_s
        self._clock = clock
        self.recorded = 0
        self.applied = 0
        self.duplicates = 0

    def record(self, request_id: str, *, key: str, team: str, deployment: str, cost_usd: float, at: float | None = None) -> bool:
        """Queue one request's cost; never blocks. Returns False when the queue was full (counted in ``dropped``)."""
        day, month = periods(self._clock() if at is None else at)
        if not self._offer(SpendEntry(request_id, key, team, deployment, to_nanos(cost_usd), day, month)):
            return False
        self.recorded += 1
        return True

    async def _write(self, batch: list[SpendEntry]) -> None:
        applied = await self._backend.spend_add(batch, self._dedupe_ttl_s)
        self.applied += applied
        self.duplicates += len(batch) - applied

    async def report(self, period: Literal["day", "month"] = "day", date: str | None = None) -> SpendReport:
        """Spend per key, team and deployment for a UTC day (``YYYYMMDD``) or month (``YYYYMM``); default: now.

        Raises ``StateUnavailable`` (503) when the backend cannot be read.
        """
        if date is None:
            day, month = periods(self._clock())
            date = day if period == "day" else month
        prefix = "d" if period == "day" else "m"
        try:
            nanos = {kind: await self._backend.spend_period(kind, f"{prefix}:{date}") for kind in SPEND_KINDS}
        except BackendUnavailable as exc:
            raise StateUnavailable("Spend cannot be read right now (shared state unavailable).") from exc
        return SpendReport(period, date, nanos)
