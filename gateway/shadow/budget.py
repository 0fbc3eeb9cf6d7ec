"""The daily shadow budget (``defaults.shadow.daily_budget_usd``), shared by every replica.

Before a shadow is sent, what it is expected to cost is reserved; it may go only if today's shadow
spend (all replicas, read from the shared tally at most once a second), plus what this process spent
since that read, plus what its shadows under way have reserved, stays within the budget. Money fails
closed: when the shared tally cannot be read, no shadow is sent. The budget can be overshot by what
other replicas spend within a second, never by this process's own shadows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.state import ShadowTally
from gateway.state.errors import BackendUnavailable
from gateway.state.spend import periods

_REFRESH_S = 1.0


class ShadowBudget:
    def __init__(self, tally: ShadowTally, clock: Callable[[], float] = time.time) -> None:
        self._tally = tally
        self._clock = clock
        self._read_at = float("-inf")
        self._day = ""
        self._spent_usd = 0.0
        self._since_read_usd = 0.0
        self._reserved_usd = 0.0

    async def reserve(self, limit_usd: float | None, expected_usd: float) -> float | None:
        """Reserve ``expected_usd`` if it fits today's budget: the amount reserved (0 without a budget), or
        ``None`` when it does not fit. Pair with ``settle``."""
        if limit_usd is None:
            return 0.0
        if not await self._refresh():
            return None
        if self._spent_usd + self._since_read_usd + self._reserved_usd + expected_usd > limit_usd:
            return None
        self._reserved_usd += expected_usd
        return expected_usd

    def settle(self, reserved_usd: float, spent_usd: float) -> None:
        """A reserved shadow finished: release its reservation, count what it actually cost."""
        self._reserved_usd = max(0.0, self._reserved_usd - reserved_usd)
        self._since_read_usd += spent_usd

    async def _refresh(self) -> bool:
        now = self._clock()
        day, _ = periods(now)
        if day == self._day and now - self._read_at < _REFRESH_S:
            return True
        try:
            nanos = await self._tally.spent_today_nanos()
        except BackendUnavailable:
            return False
        self._day, self._read_at = day, now
        self._spent_usd, self._since_read_usd = nanos / 1e9, 0.0
        return True
