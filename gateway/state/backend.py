"""The one interface both state backends implement, and the values that cross it.

``MemoryBackend`` (``memory.py``) is the embedded default: one process, no Redis. ``RedisBackend``
(``redis_backend.py``) shares everything across workers and replicas; its multi-step operations are
Lua scripts, so each is atomic. Every method of a backend either succeeds or raises
``BackendUnavailable``; the services above (cache, limiter, spend, budgets, shared stats) decide what a
failure means for the request.

Names passed in are logical (``"key:alice:requests"``, a cache digest); each backend adds its own
namespace (``gw:v1:`` by default for Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

SpendKind = Literal["key", "team", "deployment"]
SPEND_KINDS: tuple[SpendKind, ...] = ("key", "team", "deployment")


@dataclass(frozen=True, slots=True)
class RateCharge:
    """Take ``cost`` units from ``bucket`` if its sliding-window usage stays within ``limit``."""

    bucket: str
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class WindowCount:
    """A bucket's counters as the backend found them, before this charge."""

    previous: int
    current: int


@dataclass(frozen=True, slots=True)
class RateOutcome:
    """Result of one all-or-nothing ``rate_consume``: every charge was taken, or none was."""

    admitted: bool
    window: int
    """Index of the current fixed window (time // window_ms), needed to reconcile later."""
    elapsed_ms: int
    """Time into the current window."""
    counts: tuple[WindowCount, ...]
    """One per charge, in order."""


@dataclass(frozen=True, slots=True)
class SpendEntry:
    """One request's cost, in integer nano-dollars so that sums are exact."""

    request_id: str
    key: str
    team: str
    deployment: str
    nanos: int
    day: str
    """UTC day ``YYYYMMDD`` the spend counts towards."""
    month: str
    """UTC month ``YYYYMM``."""

    def names(self) -> tuple[tuple[SpendKind, str], ...]:
        return (("key", self.key), ("team", self.team), ("deployment", self.deployment))


@dataclass(frozen=True, slots=True)
class ShadowEntry:
    """One shadow's results: integer counters added once per ``shadow_id`` to a day's and a month's tally."""

    shadow_id: str
    day: str
    month: str
    counters: tuple[tuple[str, int], ...]
    """(field, increment) pairs; the fields are ``shadow_tally``'s to name."""


class StateBackend(Protocol):
    """Storage for the cache, rate-limit windows, spend counters and shared live statistics."""

    name: str

    @property
    def healthy(self) -> bool: ...

    async def ping(self) -> bool:
        """True when the backend answers now (never raises); used by ``/readyz``."""
        ...

    async def aclose(self) -> None: ...

    async def cache_get(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of the given cache keys, ``None`` for a miss (one round trip)."""
        ...

    async def cache_set(self, key: str, value: bytes, ttl_s: int) -> None: ...

    async def cache_set_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
        """Several ``(key, value, ttl_s)`` at once (one round trip on a remote backend)."""
        ...

    async def rate_consume(self, charges: Sequence[RateCharge], window_ms: int) -> RateOutcome:
        """Check every charge against its bucket's sliding window and take them all, or none."""
        ...

    async def rate_adjust_many(self, adjustments: Sequence[tuple[str, int, int]]) -> None:
        """Several ``(bucket, window, delta)`` corrections at once (one round trip on a remote backend)."""
        ...

    async def rate_adjust(self, bucket: str, window: int, delta: int) -> None:
        """Add ``delta`` (may be negative; the count never goes below 0) to one window, if it still exists."""
        ...

    async def spend_add(self, entries: Sequence[SpendEntry], dedupe_ttl_s: int) -> int:
        """Count each entry exactly once per request id; returns how many were new."""
        ...

    async def spend_get(self, kind: SpendKind, name: str, day: str, month: str) -> tuple[int, int]:
        """Nano-dollars spent by one key/team/deployment on ``day`` and in ``month``."""
        ...

    async def spend_period(self, kind: SpendKind, period: str) -> dict[str, int]:
        """Nano-dollars per name for a period: ``d:YYYYMMDD`` or ``m:YYYYMM``."""
        ...

    async def shadow_add(self, entries: Sequence[ShadowEntry], dedupe_ttl_s: int) -> int:
        """Add each entry's counters to its day and month tallies exactly once per shadow id; returns how
        many were new."""
        ...

    async def shadow_period(self, period: str) -> dict[str, int]:
        """Every counter of a period's shadow tally: ``d:YYYYMMDD`` or ``m:YYYYMM``."""
        ...

    async def stats_publish(self, member: str, payload: bytes, ttl_ms: int) -> None: ...

    async def stats_fetch(self, ttl_ms: int) -> dict[str, bytes]:
        """Every member's last payload published less than ``ttl_ms`` ago (older ones are removed)."""
        ...


def window_key(bucket: str, window: int) -> str:
    """Name of one fixed window of a rate-limit bucket."""
    return f"{bucket}:{window}"
