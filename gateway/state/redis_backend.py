"""Redis backend: shared state for every worker and replica, on a standalone Redis or a Redis Cluster.

Connection settings come from one parse of the URL (``redis_settings.py``). Which kind of server it is
is asked of the server itself (``INFO cluster``) on first use, from any node's URL:

- **standalone**: redis-py over one blocking connection pool per process (bounded; waiting for a free
  connection counts against the same short timeout), plus the lean multiplexed connection of ``resp.py``
  for the calls every request makes (rate-limit script, cache lookup, cache fill): measured at half
  redis-py's CPU per call. Both are built from the same settings (database, credentials, TLS, unix socket).
- **cluster**: redis-py's ``RedisCluster`` for everything (slot routing, ``MOVED``/``ASK``, topology
  refresh after a node fails). Every script's keys share a slot by their hash tags (``scripts.py``);
  a cache lookup of several keys is split per slot (``mget_nonatomic``).

No client-side retries (the ``CallGuard`` decides what a failure means), every call wrapped by the
guard: timeout (250 ms by default), error counting, health reporting, back-off, and the last error
kept (``last_error``) for the start-up log and ``/readyz``. Nothing from ``redis`` escapes this module:
failures surface as ``BackendUnavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

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
from gateway.state.redis_settings import RedisSettings
from gateway.state.resp import RespConnection, RespError

DEFAULT_PREFIX = "gw:v1:"
DAY_TTL_S = 90 * 86_400
MONTH_TTL_S = 800 * 86_400
SHADOW_TAG = "{shadow}"
"""Every shadow tally key carries this hash tag: one cluster slot for the script that writes them."""
SPEND_TAG = "{spend}"
_CONNECTION_CLASSES = {"tcp": Connection, "tls": SSLConnection, "unix": UnixDomainSocketConnection}


@dataclass(slots=True)
class _Scripts:
    rate_consume: AsyncScript
    rate_adjust: AsyncScript
    spend_add: AsyncScript
    shadow_add: AsyncScript
    stats_publish: AsyncScript
    stats_fetch: AsyncScript

    @classmethod
    def on(cls, client: Any) -> _Scripts:
        return cls(*(client.register_script(s) for s in (
            scripts.RATE_CONSUME, scripts.RATE_ADJUST, scripts.SPEND_ADD, scripts.SHADOW_ADD, scripts.STATS_PUBLISH,
            scripts.STATS_FETCH,
        )))


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
        self.settings = RedisSettings.from_url(url)
        self.prefix = prefix
        self._timeout = timeout
        self._max_connections = max_connections
        self._pool = BlockingConnectionPool(
            connection_class=_CONNECTION_CLASSES[self.settings.transport], max_connections=max_connections,
            timeout=timeout, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
            **self.settings.redis_py_kwargs(),
        )
        self._redis: Any = Redis(connection_pool=self._pool)
        self._cluster: RedisCluster | None = None
        self._mode: str | None = None  # "standalone" or "cluster", once the server was asked
        self._detecting: asyncio.Lock | None = None
        self.guard = CallGuard(
            timeout=timeout, cooldown=cooldown, failures=(RedisError, RespError), on_error=on_error,
            on_health=on_health, after_failure=self._drop_idle_connections,
        )
        self._clock_ms = clock_ms
        self._scripts = _Scripts.on(self._redis)
        # The two calls every request makes go over a lean multiplexed connection (see resp.py).
        self._fast: RespConnection | None = RespConnection(self.settings)
        self._rate_consume_sha = self._fast.register(scripts.RATE_CONSUME)

    @property
    def healthy(self) -> bool:
        return self.guard.healthy

    @property
    def last_error(self) -> str | None:
        """The last failure, e.g. ``AuthenticationError: WRONGPASS ...`` or a TLS reason; never a password."""
        error = self.guard.last_error
        if error and self.settings.password:
            error = error.replace(self.settings.password, "***")
        return error

    @property
    def cluster(self) -> bool | None:
        """Whether the server is a Redis Cluster (``None`` until it was first reached)."""
        return None if self._mode is None else self._mode == "cluster"

    async def _ready(self) -> Any:
        """The client for this server, asking it once whether it is a cluster node."""
        if self._mode is None:
            if self._detecting is None:
                self._detecting = asyncio.Lock()
            async with self._detecting:
                if self._mode is None:
                    try:
                        info = await self._redis.info("cluster")
                    except ResponseError:
                        info = {}  # INFO refused (an ACL without it): only a standalone server does that
                    if info.get("cluster_enabled") in (1, "1"):
                        self._cluster = RedisCluster(
                            **self.settings.cluster_kwargs(), max_connections=self._max_connections,
                            socket_timeout=self._timeout, socket_connect_timeout=self._timeout,
                        )
                        self._scripts = _Scripts.on(self._cluster)
                        self._fast = None
                        await self._pool.disconnect()
                        self._mode = "cluster"
                    else:
                        self._mode = "standalone"
                    client = self._cluster if self._cluster is not None else self._redis
                    # Scripts loaded now (on every primary of a cluster), not by a NOSCRIPT round trip
                    # on the first requests, which on a cold cluster could outlast the call timeout.
                    for script in scripts.ALL:
                        await client.script_load(script)
        return self._cluster if self._cluster is not None else self._redis

    async def _call(self, operation: str, work: Callable[[Any], Awaitable[Any]], *, force: bool = False) -> Any:
        if self._cluster is not None:
            return await self.guard.call(operation, lambda: _contained(work(self._cluster)), force=force)
        if self._mode is not None:  # the common case: no detour through _ready
            return await self.guard.call(operation, lambda: work(self._redis), force=force)

        async def run() -> Any:
            return await work(await self._ready())

        return await self.guard.call(operation, run, force=force)

    async def _drop_idle_connections(self) -> None:
        # After a Redis restart every pooled socket is dead; drop them so the probe starts fresh
        # instead of each stale connection failing once in turn.
        if self._cluster is None:
            await self._pool.disconnect(inuse_connections=False)
        if self._fast is not None:
            self._fast.close()

    async def ping(self) -> bool:
        try:
            return bool(await self._call("ping", lambda client: client.ping(), force=True))
        except BackendUnavailable:
            return False

    async def aclose(self) -> None:
        if self._fast is not None:
            self._fast.close()
        try:
            if self._cluster is not None:
                await self._cluster.aclose()
            await self._redis.aclose(close_connection_pool=True)
        except (RedisError, OSError):
            pass  # closing sockets to a dead server may fail; nothing is left to release

    # cache

    async def cache_get(self, keys: Sequence[str]) -> list[bytes | None]:
        names = [f"{self.prefix}cache:{k}" for k in keys]

        async def get(client: Any) -> list[Any]:
            values: list[Any]
            if self._fast is not None:
                values = await self._fast.execute("MGET", *names)
            elif self._cluster is not None:
                values = await self._cluster.mget_nonatomic(names)  # keys of several slots
            else:
                values = await client.mget(names)
            return values

        values = await self._call("cache_get", get)
        return [v if isinstance(v, bytes) or v is None else v.encode() for v in values]

    async def cache_set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._call("cache_set", lambda client: client.set(f"{self.prefix}cache:{key}", value, ex=ttl_s))

    async def cache_set_many(self, items: Sequence[tuple[str, bytes, int]]) -> None:
        async def send(client: Any) -> object:
            fast = self._fast
            if fast is not None:  # commands issued together share one write on the lean connection
                return await asyncio.gather(
                    *(fast.execute("SET", f"{self.prefix}cache:{key}", value, "EX", ttl_s) for key, value, ttl_s in items)
                )
            pipe = client.pipeline(transaction=False)
            for key, value, ttl_s in items:
                pipe.set(f"{self.prefix}cache:{key}", value, ex=ttl_s)
            return await pipe.execute()

        await self._call("cache_set", send)

    # rate limits

    async def rate_consume(self, charges: Sequence[RateCharge], window_ms: int) -> RateOutcome:
        keys = [f"{self.prefix}rl:{c.bucket}" for c in charges]
        args: list[int] = [window_ms, self._clock_ms() if self._clock_ms else 0]
        for c in charges:
            args += (c.limit, c.cost)

        async def consume(client: Any) -> Any:
            if self._fast is not None:
                return await self._fast.evalsha(self._rate_consume_sha, keys, args)
            return await self._scripts.rate_consume(keys=keys, args=args)

        raw = await self._call("rate_limit", consume)
        counts = tuple(WindowCount(int(raw[3 + 2 * i]), int(raw[4 + 2 * i])) for i in range(len(charges)))
        return RateOutcome(admitted=raw[0] == 1, window=int(raw[1]), elapsed_ms=int(raw[2]), counts=counts)

    async def rate_adjust(self, bucket: str, window: int, delta: int) -> None:
        key = f"{self.prefix}rl:{window_key(bucket, window)}"
        await self._call("rate_reconcile", lambda client: self._scripts.rate_adjust(keys=[key], args=[delta]))

    async def rate_adjust_many(self, adjustments: Sequence[tuple[str, int, int]]) -> None:
        keys = [(f"{self.prefix}rl:{window_key(bucket, window)}", delta) for bucket, window, delta in adjustments]

        async def send(client: Any) -> object:
            if self._cluster is not None:  # keys of several slots: one script call each
                return await asyncio.gather(*(self._scripts.rate_adjust(keys=[k], args=[d]) for k, d in keys))
            pipe = client.pipeline(transaction=False)
            for key, delta in keys:
                await self._scripts.rate_adjust(keys=[key], args=[delta], client=pipe)
            return await pipe.execute()

        await self._call("rate_reconcile", send)

    # spend: every key under the `{spend}` hash tag (one slot), see scripts.SPEND_ADD

    def _spend_key(self, period: str, kind: SpendKind) -> str:
        return f"{self.prefix}{SPEND_TAG}:{period}:{kind}"

    async def spend_add(self, entries: Sequence[SpendEntry], dedupe_ttl_s: int) -> int:
        args: list[str | int] = ["", dedupe_ttl_s, DAY_TTL_S, MONTH_TTL_S]
        for e in entries:
            args += (e.request_id, e.key, e.team, e.deployment, e.nanos, e.day, e.month)
        base = f"{self.prefix}{SPEND_TAG}"
        return int(await self._call("spend_add", lambda client: self._scripts.spend_add(keys=[base], args=args)))

    async def spend_get(self, kind: SpendKind, name: str, day: str, month: str) -> tuple[int, int]:
        async def read(client: Any) -> list[bytes | None]:
            pipe = client.pipeline(transaction=False)
            pipe.hget(self._spend_key(f"d:{day}", kind), name)
            pipe.hget(self._spend_key(f"m:{month}", kind), name)
            values: list[bytes | None] = await pipe.execute()
            return values

        day_v, month_v = await self._call("spend_read", read)
        return int(day_v or 0), int(month_v or 0)

    async def spend_period(self, kind: SpendKind, period: str) -> dict[str, int]:
        raw = await self._call("spend_read", lambda client: client.hgetall(self._spend_key(period, kind)))
        return {name.decode() if isinstance(name, bytes) else name: int(value) for name, value in raw.items()}

    # shadow evaluation tallies: every key under the `{shadow}` hash tag, see scripts.SHADOW_ADD

    async def shadow_add(self, entries: Sequence[ShadowEntry], dedupe_ttl_s: int) -> int:
        args: list[str | int] = [dedupe_ttl_s, DAY_TTL_S, MONTH_TTL_S]
        for e in entries:
            args += (e.shadow_id, e.day, e.month, len(e.counters))
            for name, increment in e.counters:
                args += (name, increment)
        base = f"{self.prefix}{SHADOW_TAG}"
        return int(await self._call("shadow_add", lambda client: self._scripts.shadow_add(keys=[base], args=args)))

    async def shadow_period(self, period: str) -> dict[str, int]:
        key = f"{self.prefix}{SHADOW_TAG}:{period}"
        raw = await self._call("shadow_read", lambda client: client.hgetall(key))
        return {name.decode() if isinstance(name, bytes) else name: int(value) for name, value in raw.items()}

    # shared live statistics

    async def stats_publish(self, member: str, payload: bytes, ttl_ms: int) -> None:
        key = f"{self.prefix}stats"
        await self._call("stats_publish",
                         lambda client: self._scripts.stats_publish(keys=[key], args=[member, payload, ttl_ms]))

    async def stats_fetch(self, ttl_ms: int) -> dict[str, bytes]:
        key = f"{self.prefix}stats"
        raw = await self._call("stats_fetch", lambda client: self._scripts.stats_fetch(keys=[key], args=[ttl_ms]))
        return {raw[i].decode(): raw[i + 1] for i in range(0, len(raw), 2)}


async def _contained(work: Awaitable[Any]) -> Any:
    """A cluster call whose unexpected failure is a failed call, never a 500: redis-py's cluster client
    has been seen raising ``AttributeError`` (a connection reset under it) while a node restarts."""
    try:
        return await work
    except (RedisError, OSError, TimeoutError):
        raise
    except Exception as exc:  # noqa: BLE001 - the library's own bug, reported as what it is
        raise RedisError(f"{type(exc).__name__} inside redis-py's cluster client: {exc}") from exc
