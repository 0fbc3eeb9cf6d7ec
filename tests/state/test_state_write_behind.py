"""Write-behind batching of cache fills and rate-limit corrections, against the real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.core.types import CacheDirective
from gateway.policy.models import RateLimit
from gateway.state.cache import ResponseCache
from gateway.state.ratelimit import RateLimiter
from gateway.state.redis_backend import RedisBackend
from gateway.state.write_behind import WriteBehind
from tests.state_support import redis_url, require_redis


async def test_writes_are_gathered_into_batches_and_drained() -> None:
    batches: list[list[int]] = []

    async def flush(batch: list[int]) -> None:
        batches.append(batch)

    wb: WriteBehind[int] = WriteBehind(flush, delay=0.01, max_items=100)
    for i in range(250):
        wb.add(i)
    await asyncio.sleep(0.05)
    assert [len(b) for b in batches] == [100, 100, 50]
    wb.add(999)
    await wb.drain()
    assert batches[-1] == [999] and sum(map(len, batches)) == 251


async def test_a_failing_flush_never_raises_into_the_caller_and_later_batches_still_go(
        caplog: pytest.LogCaptureFixture) -> None:
    sent: list[list[int]] = []

    async def flush(batch: list[int]) -> None:
        if batch == [1]:
            raise RuntimeError("backend down")
        sent.append(batch)

    wb: WriteBehind[int] = WriteBehind(flush, delay=0)
    wb.add(1)
    await wb.drain()  # logged, not raised
    assert any("write-behind batch of 1 failed" in r.getMessage() for r in caplog.records)
    wb.add(2)
    await wb.drain()
    assert sent == [[2]], "a failed batch does not stop the ones after it"


async def test_cache_fills_and_rate_corrections_reach_redis_in_batches() -> None:
    require_redis()
    prefix = f"gw:test:{uuid.uuid4().hex}:"
    backend = RedisBackend(redis_url(), prefix=prefix, timeout=5)
    try:
        cache = ResponseCache(backend)
        plans = [cache.plan("chat", {"model": "m", "seed": i, "messages": []}, {}, CacheDirective(True, 60),
                            team="t", data_class="internal") for i in range(20)]
        completion = {"object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
        assert all(cache.store_later(p, hosting="self", deployment="d", completion=completion) for p in plans)
        await cache.drain()
        hits = [await cache.lookup(p, {"self"}) for p in plans]
        assert all(h is not None and h.completion == completion for h in hits)

        limiter = RateLimiter(backend)
        limit = RateLimit(tokens_per_minute=10_000)
        tickets = [await limiter.acquire(key="k", team="t", key_limit=limit, team_limit=None, tokens=100) for _ in range(10)]
        for ticket in tickets:
            limiter.reconcile_later(ticket, 40)  # each used 60 fewer tokens than charged
        await limiter.drain()
        probe = await limiter.acquire(key="k", team="t", key_limit=limit, team_limit=None, tokens=0)
        assert probe.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 10 * 40)
    finally:
        await backend._redis.delete(*[k async for k in backend._redis.scan_iter(f"{prefix}*")] or ["none"])
        await backend.aclose()
