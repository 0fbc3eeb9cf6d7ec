"""Redis backend: shared state for every worker and replica, through ``redis.asyncio``.

One blocking connection pool per process (bounded; waiting for a free connection counts against the
same short timeout), no client-side retries (the ``CallGuard`` decides what a failure means), and every
call wrapped by the guard: timeout (250 ms by default), error counting, health reporting and back-off.
Multi-step operations are the Lua scripts of ``scripts.py``. Nothing from ``redis`` escapes this module:
failures surface as ``BackendUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.state import scripts
from gateway.state.backend import (
    RateCharge,
    RateOutcome,
    ShadowEntry,
    SpendEntry,
    SpendKind,
    WindowCount,
    window_key,
)
from gateway.state.errors import BackendUnavailable
from gateway.state.guard import CallGuard, ErrorHook, HealthHook
from gateway.state.resp import RespConnection, RespError

DEFAULT_PREFIX = "gw:v1:"
DAY_TTL_S = 90 * 86_400
MONTH_TTL_S = 800 * 86_400
SHADOW_TAG = "{shadow}"
"""Every shadow tally key carries this hash tag: one cluster slot for the script that writes them."""


class RedisBackend:
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.25,
        prefix: str = DEFAULT_PREFIX,
        max_connections: int = 32,
        cooldown: float = 1.0,
        on_error: ErrorHook | None = None,
        on_health: HealthHook | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        """``clock_ms`` (tests only) replaces the Redis server's clock for rate-limit windows."""
        self.prefix = prefix
        self._pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
            socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
        )
        self._redis = Redis(connection_pool=self._pool)
        self.guard = CallGuard(
            timeout=timeout, cooldown=cooldown, failures=(RedisError, RespError), on_error=on_error,
            on_health=on_health, after_failure=self._drop_idle_connections,
        )
        self._clock_ms = clock_ms
        self._rate_consume = self._redis.register_script(scripts.RATE_CONSUME)
        # The two calls every request makes go over a lean multiplexed connection (see resp.py).
        self._fast = RespConnection.from_url(url)
        self._rate_consume_sha = self._fast.register(scripts.RATE_CONSUME) if self._fast else ""
        self._rate_adjust = self._redis.register_script(scripts.RATE_ADJUST)
        self._spend_add = self._redis.register_script(scripts.SPEND_ADD)
        self._shadow_add = self._redis.register_script(scripts.SHADOW_ADD)
        self._stats_publish = self._redis.register_script(scripts.STATS_PUBLISH)
        self._stats_fetch = self._redis.register_script(scripts.STATS_FETCH)

    @property
    def healthy(self) -> bool:
        return self.guard.healthy

    async def _drop_idle_connections(self) -> None:
        # After a Redis restart every pooled socket is dead; drop them so the probe starts fresh
        # instead of each stale connection failing once in turn.
        await self._pool.disconnect(inuse_connections=False)
        if self._fast is not None:
            self._fast.close()

    async def ping(self) -> bool:
        try:
            return bool(await self.guard.call("ping", self._redis.ping, force=True))
        except BackendUnavailable:
            return False

    async def aclose(self) -> None:
        if self._fast is not None:
            self._fast.close()
        try:
            await self._redis.aclose(close_connection_pool=True)
        except (RedisError, OSError):
            pass  # closing sockets to a dead server may fail; nothing is left to release

    # cache

    async def cache_get(self, keys: Sequence[str]) -> list[bytes | None]:
        names = [f"{self.prefix}cache:{k}" for k in keys]
        fast = self._fast
        if fast is not None:
            values = await self.guard.call("cache_get", lambda: fast.execute("MGET", *names))
        else:
            values = await self.guard.call("cache_get", lambda: self._redis.mget(names))
        return [v if isinstance(v, bytes) or v is None else v.encode() for v in values]

    async def cache_set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self.guard.call("cache_set", lambda: self._redis.set(f"{self.prefix}cache:{key}", value, ex=ttl_s))

    async def cache_set_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
        async def send() -> object:
            pipe = self._redis.pipeline(transaction=False)
            for key, value, ttl_s in items:
                pipe.set(f"{self.prefix}cache:{key}", value, ex=ttl_s)
            return await pipe.execute()

        await self.guard.call("cache_set", send)

    # rate limits

    async def rate_consume(self, charges: Sequence[RateCharge], window_ms: int) -> RateOutcome:
        keys = [f"{self.prefix}rl:{c.bucket}" for c in charges]
        args: list[int] = [window_ms, self._clock_ms() if self._clock_ms else 0]
        for c in charges:
            args += (c.limit, c.cost)
        fast = self._fast
        if fast is not None:
            raw = await self.guard.call("rate_limit", lambda: fast.evalsha(self._rate_consume_sha, keys, args))
        else:
            raw = await self.guard.call("rate_limit", lambda: self._rate_consume(keys=keys, args=args))
        counts = tuple(WindowCount(int(raw[3 + 2 * i]), int(raw[4 + 2 * i])) for i in range(len(charges)))
        return RateOutcome(admitted=raw[0] == 1, window=int(raw[1]), elapsed_ms=int(raw[2]), counts=counts)

    async def rate_adjust(self, bucket: str, window: int, delta: int) -> None:
        key = f"{self.prefix}rl:{window_key(bucket, window)}"
        await self.guard.call("rate_reconcile", lambda: self._rate_adjust(keys=[key], args=[delta]))

    async def rate_adjust_many(self, adjustments: Sequence[tuple[str, int, int]]) -> None:
        async def send() -> object:
            pipe = self._redis.pipeline(transaction=False)
            for bucket, window, delta in adjustments:
                key = f"{self.prefix}rl:{window_key(bucket, window)}"
                await self._rate_adjust(keys=[key], args=[delta], client=pipe)
            return await pipe.execute()

        await self.guard.call("rate_reconcile", send)

    # spend

    async def spend_add(self, entries: Sequence[SpendEntry], dedupe_ttl_s: int) -> int:
        args: list[str | int] = [self.prefix, dedupe_ttl_s, DAY_TTL_S, MONTH_TTL_S]
        for e in entries:
            args += (e.request_id, e.key, e.team, e.deployment, e.nanos, e.day, e.month)
        return int(await self.guard.call("spend_add", lambda: self._spend_add(keys=[], args=args)))

    async def spend_get(self, kind: SpendKind, name: str, day: str, month: str) -> tuple[int, int]:
        async def read() -> list[bytes | None]:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hget(f"{self.prefix}spend:d:{day}:{kind}", name)
                pipe.hget(f"{self.prefix}spend:m:{month}:{kind}", name)
                return await pipe.execute()

        day_v, month_v = await self.guard.call("spend_read", read)
        return int(day_v or 0), int(month_v or 0)

    async def spend_period(self, kind: SpendKind, period: str) -> dict[str, int]:
        raw = await self.guard.call("spend_read", lambda: self._redis.hgetall(f"{self.prefix}spend:{period}:{kind}"))
        return {name.decode() if isinstance(name, bytes) else name: int(value) for name, value in raw.items()}

    # shadow evaluation tallies: every key under the `{shadow}` hash tag, see scripts.SHADOW_ADD

    async def shadow_add(self, entries: Sequence[ShadowEntry], dedupe_ttl_s: int) -> int:
        args: list[str | int] = [dedupe_ttl_s, DAY_TTL_S, MONTH_TTL_S]
        for e in entries:
            args += (e.shadow_id, e.day, e.month, len(e.counters))
            for name, increment in e.counters:
                args += (name, increment)
        base = f"{self.prefix}{SHADOW_TAG}"
        return int(await self.guard.call("shadow_add", lambda: self._shadow_add(keys=[base], args=args)))

    async def shadow_period(self, period: str) -> dict[str, int]:
        key = f"{self.prefix}{SHADOW_TAG}:{period}"
        raw = await self.guard.call("shadow_read", lambda: self._redis.hgetall(key))
        return {name.decode() if isinstance(name, bytes) else name: int(value) for name, value in raw.items()}

    # shared live statistics

    async def stats_publish(self, member: str, payload: bytes, ttl_ms: int) -> None:
        key = f"{self.prefix}stats"
        await self.guard.call("stats_publish", lambda: self._stats_publish(keys=[key], args=[member, payload, ttl_ms]))

    async def stats_fetch(self, ttl_ms: int) -> dict[str, bytes]:
        key = f"{self.prefix}stats"
        raw = await self.guard.call("stats_fetch", lambda: self._stats_fetch(keys=[key], args=[ttl_ms]))
        return {raw[i].decode(): raw[i + 1] for i in range(0, len(raw), 2)}
