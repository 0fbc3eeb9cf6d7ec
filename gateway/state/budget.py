"""Team budgets: how much of today's and this month's budget is spent, and what that means now.

``BudgetChecker.status`` reads a team's day and month spend at most once per ``ttl`` seconds (1 s by
default) and per process; concurrent requests of the same team share that one read. The figures
therefore lag real spend by up to ``ttl`` plus the spend recorder's flush delay: a burst can overshoot
a budget by what it spends in that time.

Semantics (``Budget``):
- ``over``: the day or month spend has reached its limit;
- ``pacing``: ``on_exceed: pace`` and the spend has reached ``pace_from`` of a limit; the routing
  engine then prefers cheaper deployments. A ``pace`` budget never refuses requests;
- ``check`` raises ``BudgetExceeded`` (429 ``insufficient_quota``) when over a ``deny`` budget.

When the spend cannot be read, ``status`` reports ``degraded`` with the last figures it had (or zero)
on ``on_failure="open"``, and raises ``StateUnavailable`` on ``"closed"``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.core.errors import BudgetExceeded
from gateway.policy.models import Budget
from gateway.state.backend import StateBackend
from gateway.state.errors import BackendUnavailable, StateUnavailable
from gateway.state.spend import NANOS_PER_USD, periods


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    team: str
    spent_day_usd: float
    spent_month_usd: float
    daily_usd: float | None
    monthly_usd: float | None
    over: bool
    pacing: bool
    degraded: bool = False

    @property
    def remaining_day_usd(self) -> float | None:
        return None if self.daily_usd is None else max(0.0, self.daily_usd - self.spent_day_usd)

    @property
    def remaining_month_usd(self) -> float | None:
        return None if self.monthly_usd is None else max(0.0, self.monthly_usd - self.spent_month_usd)


@dataclass(frozen=True, slots=True)
class _Spent:
    day: str
    day_nanos: int
    month_nanos: int
    expires: float
    ok: bool


class BudgetChecker:
    def __init__(
        self,
        backend: StateBackend,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._backend = backend
        self._ttl = ttl
        self._clock = clock
        self._wall = wall_clock
        self._cache: dict[str, _Spent] = {}
        self._reads: dict[str, asyncio.Future[_Spent]] = {}
        self.reads = 0

    async def status(self, team: str, budget: Budget, *, on_failure: Literal["open", "closed"] = "open") -> BudgetStatus:
        spent = await self._spent(team)
        if not spent.ok and on_failure == "closed":
            raise StateUnavailable(
                "The team budget cannot be checked right now (shared state unavailable); try again shortly.",
                headers={"retry-after": "1"},
            )
        return _judge(team, budget, spent)

    async def check(self, team: str, budget: Budget | None, *, on_failure: Literal["open", "closed"] = "open") -> BudgetStatus | None:
        """``status``, raising ``BudgetExceeded`` when a ``deny`` budget is used up. ``None`` without a budget."""
        if budget is None or (budget.daily_usd is None and budget.monthly_usd is None):
            return None
        status = await self.status(team, budget, on_failure=on_failure)
        if status.over and budget.on_exceed == "deny":
            period, limit, spent = (
                ("daily", status.daily_usd, status.spent_day_usd)
                if status.daily_usd is not None and status.spent_day_usd >= status.daily_usd
                else ("monthly", status.monthly_usd, status.spent_month_usd)
            )
            raise BudgetExceeded(
                f"Team `{team}` has used its {period} budget: spent ${spent:.4f} of ${limit:.2f}."
            )
        return status

    def forget(self, team: str | None = None) -> None:
        """Drop cached figures (all teams by default), e.g. after a policy reload or in tests."""
        if team is None:
            self._cache.clear()
        else:
            self._cache.pop(team, None)

    async def _spent(self, team: str) -> _Spent:
        day, month = periods(self._wall())
        cached = self._cache.get(team)
        if cached is not None and cached.expires > self._clock() and cached.day == day:
            return cached
        pending = self._reads.get(team)
        if pending is None:
            pending = asyncio.ensure_future(self._read(team, day, month, cached))
            self._reads[team] = pending
            pending.add_done_callback(lambda _: self._reads.pop(team, None))
        return await asyncio.shield(pending)

    async def _read(self, team: str, day: str, month: str, previous: _Spent | None) -> _Spent:
        self.reads += 1
        expires = self._clock() + self._ttl
        try:
            day_nanos, month_nanos = await self._backend.spend_get("team", team, day, month)
        except BackendUnavailable:
            # Keep the last figures (same day only) but mark them; retried after the next ttl.
            last = previous if previous is not None and previous.day == day else None
            spent = _Spent(day, last.day_nanos if last else 0, last.month_nanos if last else 0, expires, ok=False)
        else:
            spent = _Spent(day, day_nanos, month_nanos, expires, ok=True)
        self._cache[team] = spent
        return spent


def _judge(team: str, budget: Budget, spent: _Spent) -> BudgetStatus:
    day_usd = spent.day_nanos / NANOS_PER_USD
    month_usd = spent.month_nanos / NANOS_PER_USD
    shares = [
        used / limit for used, limit in ((day_usd, budget.daily_usd), (month_usd, budget.monthly_usd)) if limit
    ]
    over = any(share >= 1 for share in shares)
    pacing = budget.on_exceed == "pace" and any(share >= budget.pace_from for share in shares)
    return BudgetStatus(
        team, day_usd, month_usd, budget.daily_usd, budget.monthly_usd, over=over, pacing=pacing, degraded=not spent.ok,
    )
