"""Circuit breaker per deployment: closed → open → half-open → closed.

Opens after ``consecutive_failures`` failures in a row, or when the failure ratio over the last
``window`` calls reaches ``failure_ratio`` (with at least ``min_calls`` calls). While open, calls are
refused without touching the upstream; after ``open_seconds`` one probe call is let through
(half-open): success closes the breaker, failure opens it again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from gateway.core.types import BreakerState

__all__ = ["BreakerState", "CircuitBreaker"]


class CircuitBreaker:
    __slots__ = (
        "name", "consecutive_failures", "failure_ratio", "window", "min_calls", "open_seconds",
        "_state", "_failures_in_row", "_recent", "_opened_at", "_probe_out", "_clock", "_on_change", "_timer",
    )

    def __init__(
        self,
        name: str,
        *,
        consecutive_failures: int = 5,
        failure_ratio: float = 0.5,
        window: int = 20,
        min_calls: int = 10,
        open_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.consecutive_failures = consecutive_failures
        self.failure_ratio = failure_ratio
        self.window = window
        self.min_calls = min_calls
        self.open_seconds = open_seconds
        self._state = BreakerState.CLOSED
        self._failures_in_row = 0
        self._recent: deque[bool] = deque(maxlen=window)
        self._opened_at = 0.0
        self._probe_out = False
        self._clock = clock
        self._on_change = on_change
        self._timer: asyncio.TimerHandle | None = None

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.open_seconds:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """May a call go to the upstream now? In half-open state only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return True
        return False

    def record_success(self) -> None:
        self._failures_in_row = 0
        self._recent.append(True)
        if self._state is not BreakerState.CLOSED:
            self._probe_out = False
            self._recent.clear()
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures_in_row += 1
        self._recent.append(False)
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        if self._state is BreakerState.CLOSED and (
            self._failures_in_row >= self.consecutive_failures
            or (len(self._recent) >= self.min_calls and self._recent.count(False) / len(self._recent) >= self.failure_ratio)
        ):
            self._open()

    def force_open(self) -> None:
        """Open now (e.g. active health checks failed), whatever the recent calls said."""
        self._open()

    def force_close(self) -> None:
        self._failures_in_row = 0
        self._recent.clear()
        self._probe_out = False
        self._set(BreakerState.CLOSED)

    def configure(self, *, consecutive_failures: int, failure_ratio: float, window: int, min_calls: int,
                  open_seconds: float) -> None:
        """Apply new thresholds (policy reload) without losing the current state."""
        self.consecutive_failures = consecutive_failures
        self.failure_ratio = failure_ratio
        self.min_calls = min_calls
        self.open_seconds = open_seconds
        if window != self.window:
            self.window = window
            self._recent = deque(self._recent, maxlen=window)

    def release_probe(self) -> None:
        """A probe ended without a verdict (e.g. the client went away): let another one through."""
        self._probe_out = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probe_out = False
        self._set(BreakerState.OPEN)
        # Announce half-open when it is due, not only when someone looks: the engine drops open
        # deployments, so without this nobody would ever look again and the breaker would stay open.
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._timer = asyncio.get_running_loop().call_later(self.open_seconds, self._half_open_due)
        except RuntimeError:
            self._timer = None  # no loop (unit tests with a fake clock): the lazy check in `state` applies

    def _half_open_due(self) -> None:
        self._timer = None
        if self._state is BreakerState.OPEN:
            self._set(BreakerState.HALF_OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(self.name, state)
