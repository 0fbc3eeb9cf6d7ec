"""Shadow evaluation results, summed across every worker and replica: record now, count in the background.

Each finished shadow becomes integer counters (``ShadowCounts``) added once per shadow id to a UTC day's
and month's tally in the backend (on Redis: one hash per period under the ``{shadow}`` hash tag, written
by one script, so it works on a Redis Cluster). Recording only puts them on a bounded queue; a
worker writes batches, retrying with back-off without counting twice (the id is the guard): the same
``queued_writer.QueuedWriter`` as ``spend.SpendRecorder``. Fractions are kept as integer millionths so sums stay exact.

Field names: ``["pair", model, primary, shadow, counter]`` for a pair's counters and
``["spend", deployment]`` for what shadow work cost on a deployment, JSON-encoded (names may hold any
character).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import orjson

from gateway.state.backend import ShadowEntry, StateBackend
from gateway.state.errors import BackendUnavailable, StateUnavailable
from gateway.state.queued_writer import QueuedWriter
from gateway.state.spend import periods

log = logging.getLogger("gateway.state.shadow")

Pair = tuple[str, str, str]
"""(model, primary deployment, shadow deployment)."""


@dataclass(frozen=True, slots=True)
class ShadowCounts:
    """What one shadow adds to its pair's tally, and what it cost per deployment (nano-dollars)."""

    pair: Pair
    counters: Mapping[str, int]
    spend: Mapping[str, int] = field(default_factory=dict)

    def fields(self) -> tuple[tuple[str, int], ...]:
        model, primary, shadow = self.pair
        out = [(_name("pair", model, primary, shadow, k), v) for k, v in self.counters.items() if v]
        out += [(_name("spend", dep), v) for dep, v in self.spend.items() if v]
        return tuple(out)


@dataclass(frozen=True, slots=True)
class ShadowTallyReport:
    """A period's counters, decoded: per pair, and spend per deployment (nano-dollars)."""

    period: Literal["day", "month"]
    date: str
    pairs: dict[Pair, dict[str, int]]
    spend: dict[str, int]


def _name(*parts: str) -> str:
    return orjson.dumps(parts).decode()


def decode(raw: Mapping[str, int]) -> tuple[dict[Pair, dict[str, int]], dict[str, int]]:
    pairs: dict[Pair, dict[str, int]] = {}
    spend: dict[str, int] = {}
    for name, value in raw.items():
        try:
            parts = orjson.loads(name)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
            continue
        if len(parts) == 5 and parts[0] == "pair":
            pairs.setdefault((parts[1], parts[2], parts[3]), {})[parts[4]] = value
        elif len(parts) == 2 and parts[0] == "spend":
            spend[parts[1]] = value
    return pairs, spend


class ShadowTally(QueuedWriter[ShadowEntry]):
    what = "shadow results"
    task_name = "gateway-shadow-tally"

    def __init__(self, backend: StateBackend, *, max_queue: int = 10_000, batch_size: int = 128,
                 dedupe_ttl_s: int = 2 * 86_400, retry_initial: float = 0.05, retry_max: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(log=log, max_queue=max_queue, batch_size=batch_size, retry_initial=retry_initial,
                         retry_max=retry_max)
        self._backend = backend
        self._dedupe_ttl_s = dedupe_ttl_s
        self._clock = clock

    def record(self, shadow_id: str, counts: ShadowCounts, at: float | None = None) -> bool:
        """Queue one shadow's counters; never blocks. False when the queue was full (counted in ``dropped``)."""
        day, month = periods(self._clock() if at is None else at)
        return self._offer(ShadowEntry(shadow_id, day, month, counts.fields()))

    async def _write(self, batch: list[ShadowEntry]) -> None:
        await self._backend.shadow_add(batch, self._dedupe_ttl_s)

    async def report(self, period: Literal["day", "month"] = "day", date: str | None = None) -> ShadowTallyReport:
        """The counters of a UTC day (``YYYYMMDD``) or month (``YYYYMM``); default: now. Raises
        ``StateUnavailable`` (503) when the backend cannot be read."""
        if date is None:
            day, month = periods(self._clock())
            date = day if period == "day" else month
        try:
            raw = await self._backend.shadow_period(f"{'d' if period == 'day' else 'm'}:{date}")
        except BackendUnavailable as exc:
            raise StateUnavailable("Shadow results cannot be read right now (shared state unavailable).") from exc
        pairs, spend = decode(raw)
        return ShadowTallyReport(period, date, pairs, spend)

    async def spent_today_nanos(self) -> int:
        """What shadow work has cost today, every replica together (raises ``BackendUnavailable``)."""
        day, _ = periods(self._clock())
        _, spend = decode(await self._backend.shadow_period(f"d:{day}"))
        return sum(spend.values())
