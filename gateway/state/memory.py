"""In-process backend: the embedded default when no Redis URL is configured.

Same semantics as ``RedisBackend`` for one process. No method awaits anything before it has finished
its work, so each operation is atomic with respect to other tasks, just as a Lua script is in Redis.
The cache is bounded by total value bytes (least recently used entries go first); expired entries of
every kind are dropped lazily and by an occasional sweep.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from gateway.state.backend import (
    RateCharge,
    RateOutcome,
    ShadowEntry,
    SpendEntry,
    SpendKind,
    WindowCount,
    window_key,
)
from gateway.state.window import fits

_SWEEP_EVERY = 1024


class MemoryBackend:
    name = "memory"

    def __init__(self, *, max_cache_bytes: int = 64 * 1024 * 1024, clock: Callable[[], float] = time.time) -> None:
        """``clock`` returns wall-clock seconds; tests replace it to move through rate-limit windows."""
        self._clock = clock
        self._max_cache_bytes = max_cache_bytes
        self._cache: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._cache_bytes = 0
        self._windows: dict[str, tuple[float, int]] = {}
        self._seen_requests: dict[str, float] = {}
        self._spend: dict[str, dict[str, int]] = {}
        self._seen_shadows: dict[str, float] = {}
        self._shadow: dict[str, dict[str, int]] = {}
        self._stats: dict[str, tuple[float, bytes]] = {}
        self._ops = 0

    @property
    def healthy(self) -> bool:
        return True

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

    def _tick(self, now: float) -> None:
        self._ops += 1
        if self._ops % _SWEEP_EVERY == 0:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
            self._seen_requests = {k: v for k, v in self._seen_requests.items() if v > now}
            self._seen_shadows = {k: v for k, v in self._seen_shadows.items() if v > now}

    # cache

    async def cache_get(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock()
        out: list[bytes | None] = []
        for key in keys:
            item = self._cache.get(key)
            if item is None or item[0] <= now:
                if item is not None:
                    self._evict(key)
                out.append(None)
                continue
            self._cache.move_to_end(key)
            out.append(item[1])
        return out

    async def cache_set(self, key: str, value: bytes, ttl_s: int) -> None:
        if len(value) > self._max_cache_bytes:
            return
        if key in self._cache:
            self._evict(key)
        self._cache[key] = (self._clock() + ttl_s, value)
        self._cache_bytes += len(value)
        while self._cache_bytes > self._max_cache_bytes:
            self._evict(next(iter(self._cache)))

    async def cache_set_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
        for key, value, ttl_s in items:
            await self.cache_set(key, value, ttl_s)

    def _evict(self, key: str) -> None:
        _, value = self._cache.pop(key)
        self._cache_bytes -= len(value)

    # rate limits

    def _count(self, key: str, now: float) -> int:
        item = self._windows.get(key)
        return item[1] if item is not None and item[0] > now else 0

    async def rate_consume(self, charges: Sequence[RateCharge], window_ms: int) -> RateOutcome:
        now = self._clock()
        now_ms = int(now * 1000)
        window, elapsed = divmod(now_ms, window_ms)
        self._tick(now)
        counts = tuple(
            WindowCount(
                self._count(window_key(c.bucket, window - 1), now), self._count(window_key(c.bucket, window), now)
            )
            for c in charges
        )
        admitted = all(
            fits(n.previous, n.current, c.cost, c.limit, elapsed, window_ms) for c, n in zip(charges, counts, strict=True)
        )
        if admitted:
            expires = now + (2 * window_ms + 1000) / 1000
            for c, n in zip(charges, counts, strict=True):
                if c.cost > 0:
                    self._windows[window_key(c.bucket, window)] = (expires, n.current + c.cost)
        return RateOutcome(admitted=admitted, window=window, elapsed_ms=elapsed, counts=counts)

    async def rate_adjust_many(self, adjustments: Sequence[tuple[str, int, int]]) -> None:
        for bucket, window, delta in adjustments:
            await self.rate_adjust(bucket, window, delta)

    async def rate_adjust(self, bucket: str, window: int, delta: int) -> None:
        key = window_key(bucket, window)
        item = self._windows.get(key)
        if item is not None and item[0] > self._clock():
            self._windows[key] = (item[0], max(0, item[1] + delta))

    # spend

    async def spend_add(self, entries: Sequence[SpendEntry], dedupe_ttl_s: int) -> int:
        now = self._clock()
        self._tick(now)
        applied = 0
        for e in entries:
            if not _first_sighting(self._seen_requests, e.request_id, now, dedupe_ttl_s):
                continue
            for kind, name in e.names():
                for period in (f"d:{e.day}", f"m:{e.month}"):
                    counters = self._spend.setdefault(f"{period}:{kind}", {})
                    counters[name] = counters.get(name, 0) + e.nanos
            applied += 1
        return applied

    async def spend_get(self, kind: SpendKind, name: str, day: str, month: str) -> tuple[int, int]:
        return (
            self._spend.get(f"d:{day}:{kind}", {}).get(name, 0),
            self._spend.get(f"m:{month}:{kind}", {}).get(name, 0),
        )

    async def spend_period(self, kind: SpendKind, period: str) -> dict[str, int]:
        return dict(self._spend.get(f"{period}:{kind}", {}))

    # shadow evaluation tallies

    async def shadow_add(self, entries: Sequence[ShadowEntry], dedupe_ttl_s: int) -> int:
        now = self._clock()
        self._tick(now)
        applied = 0
        for e in entries:
            if not _first_sighting(self._seen_shadows, e.shadow_id, now, dedupe_ttl_s):
                continue
            for period in (f"d:{e.day}", f"m:{e.month}"):
                tally = self._shadow.setdefault(period, {})
                for name, increment in e.counters:
                    tally[name] = tally.get(name, 0) + increment
            applied += 1
        return applied

    async def shadow_period(self, period: str) -> dict[str, int]:
        return dict(self._shadow.get(period, {}))

    # shared live statistics (one process: only its own)

    async def stats_publish(self, member: str, payload: bytes, ttl_ms: int) -> None:
        self._stats[member] = (self._clock(), payload)

    async def stats_fetch(self, ttl_ms: int) -> dict[str, bytes]:
        cutoff = self._clock() - ttl_ms / 1000
        self._stats = {m: v for m, v in self._stats.items() if v[0] >= cutoff}
        return {m: v[1] for m, v in self._stats.items()}


def _first_sighting(seen: dict[str, float], ident: str, now: float, ttl_s: int) -> bool:
    """Whether ``ident`` is new (or its mark has expired); marks it seen for ``ttl_s`` if so. The in-process
    counterpart of the Redis scripts' ``SET NX EX`` guard."""
    until = seen.get(ident)
    if until is not None and until > now:
        return False
    seen[ident] = now + ttl_s
    return True
