"""Timeout, failure accounting and back-off around every call to a remote state backend.

One failed call (error or timeout) marks the backend unhealthy and opens the guard for ``cooldown``
seconds: calls during that time fail at once without touching the network, so a dead or stalled Redis
costs the request path nothing. After the cooldown exactly one call goes through as a probe (the others
keep failing fast); its success closes the guard and reports the backend healthy again. Recovery needs
no restart and a dead Redis sees at most one attempt per cooldown per process.

``on_error(operation)`` is called once per attempted call that failed (skipped calls are counted in
``skipped`` only, so the error metric counts real Redis failures); ``on_health(bool)`` on every change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway.state.errors import BackendUnavailable

T = TypeVar("T")

ErrorHook = Callable[[str], None]
HealthHook = Callable[[bool], None]


class CallGuard:
    def __init__(
        self,
        *,
        timeout: float,
        failures: tuple[type[BaseException], ...],
        cooldown: float = 1.0,
        on_error: ErrorHook | None = None,
        on_health: HealthHook | None = None,
        after_failure: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.cooldown = cooldown
        self._failures = failures + (TimeoutError, OSError)
        self._on_error = on_error
        self._on_health = on_health
        self._after_failure = after_failure
        self._clock = clock
        self._healthy = True
        self._open_until = 0.0
        self._probing = False
        self.errors = 0
        self.skipped = 0
        self.last_error: str | None = None
        """The last failure as ``Class: message`` (the backend scrubs it before showing it)."""

    @property
    def healthy(self) -> bool:
        return self._healthy

    async def call(self, operation: str, fn: Callable[[], Awaitable[T]], *, force: bool = False) -> T:
        """Run ``fn()`` under the timeout, or raise ``BackendUnavailable``. ``force`` ignores the back-off (``ping``)."""
        probe = False
        if not self._healthy and not force:
            if self._clock() < self._open_until or self._probing:
                self.skipped += 1
                raise BackendUnavailable(operation, "backing off after a recent failure")
            probe = self._probing = True
        try:
            async with asyncio.timeout(self.timeout):
                result = await fn()
        except self._failures as exc:
            self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            await self._failed(operation)
            raise BackendUnavailable(operation, f"{type(exc).__name__}: {exc}") from exc
        finally:
            if probe:
                self._probing = False
        self._succeeded()
        return result

    async def _failed(self, operation: str) -> None:
        self.errors += 1
        self._open_until = self._clock() + self.cooldown
        if self._on_error is not None:
            self._on_error(operation)
        if self._healthy:
            self._healthy = False
            if self._on_health is not None:
                self._on_health(False)
        if self._after_failure is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._after_failure()
            except self._failures:
                pass  # dropping idle connections is best effort; the next probe opens fresh ones

    def _succeeded(self) -> None:
        if not self._healthy:
            self._healthy = True
            if self._on_health is not None:
                self._on_health(True)
