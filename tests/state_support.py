"""Helpers for the state-layer tests (no tests here): a private redis-server, key prefixes, counters.

The tests run against a real Redis that they start themselves: ``redis_url()`` starts one
``redis-server`` on a free loopback port for the whole test session (on first use; stopped when the
session ends) and never touches a Redis it did not start, such as one on the default port. Without
``redis-server`` installed the tests fail, never skip: ``bash .ci/install-redis.sh`` installs it.
Every test still uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio

from gateway.state.redis_backend import RedisBackend
from tests.redis_support import RedisServer


class _Session:
    """The session's private redis-server (a class attribute: module globals are not reassigned)."""

    server: RedisServer | None = None


def redis_url() -> str:
    """The URL of this test session's own redis-server, started on first use."""
    if _Session.server is None:
        _Session.server = RedisServer().start()
        atexit.register(_Session.server.kill)
    return _Session.server.url


def require_redis(url: str | None = None) -> None:
    url = url or redis_url()
    try:
        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.fail(f"the test's own Redis at {url} does not answer ({exc})", pytrace=False)


class Hooks:
    """Records the ``on_error`` / ``on_health`` callbacks a backend makes."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.health: list[bool] = []

    def on_error(self, operation: str) -> None:
        self.errors[operation] += 1

    def on_health(self, up: bool) -> None:
        self.health.append(up)


async def delete_prefix(url: str, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def redis_backend(url: str | None = None, prefix: str | None = None, **options: object) -> AsyncIterator[RedisBackend]:
    """A ``RedisBackend`` on a fresh key prefix (in the session's own Redis by default), its keys deleted afterwards."""
    url = url or redis_url()
    require_redis(url)
    prefix = prefix or f"gw:test:{uuid.uuid4().hex[:10]}:"
    backend = RedisBackend(url, prefix=prefix, **options)  # type: ignore[arg-type]
    try:
        yield backend
    finally:
        await backend.aclose()
        await delete_prefix(url, prefix)
