"""``StateService``: the state layer as the composition root sees it, built from two settings."""

from __future__ import annotations

import logging
from typing import Any

from gateway.state.backend import StateBackend
from gateway.state.budget import BudgetChecker
from gateway.state.cache import ResponseCache
from gateway.state.guard import ErrorHook, HealthHook
from gateway.state.memory import MemoryBackend
from gateway.state.ratelimit import RateLimiter
from gateway.state.shadow_tally import ShadowTally
from gateway.state.shared_stats import SharedStats
from gateway.state.spend import SpendRecorder

log = logging.getLogger("gateway.state")


class StateService:
    """One backend and the services on top of it: ``cache``, ``limiter``, ``budgets``, ``spend``, ``shadows``,
    ``shared_stats``."""

    def __init__(self, backend: StateBackend, *, on_health: HealthHook | None = None, window_s: int = 60) -> None:
        self.backend = backend
        self.cache = ResponseCache(backend)
        self.limiter = RateLimiter(backend, window_s=window_s)
        self.budgets = BudgetChecker(backend)
        self.spend = SpendRecorder(backend)
        self.shadows = ShadowTally(backend)
        self.shared_stats = SharedStats(backend)
        self._on_health = on_health

    @classmethod
    def from_settings(
        cls,
        redis_url: str | None,
        timeout: float = 0.25,
        on_error: ErrorHook | None = None,
        on_health: HealthHook | None = None,
        **redis_options: Any,
    ) -> StateService:
        """Redis when ``redis_url`` is set (``redis://``, ``rediss://``, ``unix://``, any node of a
        cluster; see ``redis_settings.py``), else in-process. A malformed URL raises ``RedisURLError``.

        ``on_error(operation)`` is called for each failed Redis call (wire it to ``gateway_redis_errors_total``),
        ``on_health(up)`` whenever Redis goes down or comes back (``gateway_redis_up``). ``redis_options``:
        ``prefix``, ``max_connections``, ``cooldown`` (see ``RedisBackend``).
        """
        if not redis_url:
            return cls(MemoryBackend(), on_health=on_health)
        from gateway.state.redis_backend import RedisBackend  # redis is imported only when configured

        backend = RedisBackend(redis_url, timeout=timeout, on_error=on_error, on_health=on_health, **redis_options)
        return cls(backend, on_health=on_health)

    @property
    def kind(self) -> str:
        """``memory`` or ``redis``."""
        return self.backend.name

    @property
    def healthy(self) -> bool:
        return self.backend.healthy

    @property
    def last_error(self) -> str | None:
        """Why the backend last failed (``WRONGPASS ...``, a TLS reason), for ``/readyz``; no secrets."""
        return getattr(self.backend, "last_error", None)

    async def ping(self) -> bool:
        """Whether the backend answers now; for ``/readyz``. Never raises."""
        return await self.backend.ping()

    async def start(self) -> None:
        """Start the spend worker and report the initial health (an unreachable Redis does not stop startup)."""
        await self.spend.start()
        await self.shadows.start()
        up = await self.backend.ping()
        if self._on_health is not None and up:
            self._on_health(True)  # the guard only reports changes; say "up" once at start
        if not up:
            # Serving on (limits fail open or closed by policy), but an operator must see why at once:
            # a wrong password or a TLS failure would otherwise only show as missing cache hits.
            where = getattr(getattr(self.backend, "settings", None), "describe", lambda: "Redis")()
            log.error("shared state at %s is unreachable, serving degraded: %s", where, self.last_error)

    async def aclose(self) -> None:
        """Flush pending spend, cache fills and rate corrections (bounded waits), then close connections."""
        await self.cache.drain()
        await self.limiter.drain()
        await self.spend.stop()
        await self.shadows.stop()
        await self.backend.aclose()
