"""Redis down, slow or restarting never takes the gateway down, and recovery needs no restart.

Covers: an unreachable Redis (closed port), a frozen one (SIGSTOP: every call would hang), and a real
kill -9 / restart of a private redis-server in the middle of traffic.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

from gateway.core.types import CacheDirective
from gateway.policy.models import Budget, RateLimit
from gateway.state.errors import BackendUnavailable, StateUnavailable
from gateway.state.guard import CallGuard
from gateway.state.ratelimit import RateLimitExceeded
from gateway.state.service import StateService
from gateway.state.spend import periods
from tests.redis_support import RedisServer
from tests.state_support import Hooks

UNREACHABLE = "redis://127.0.0.1:1/0"
ON = CacheDirective(enabled=True, ttl_seconds=60)
RPM = RateLimit(requests_per_minute=100_000, tokens_per_minute=10_000_000)


def _body(i: int) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}], "temperature": 0}


def _completion(i: int) -> dict[str, Any]:
    return {"id": f"c{i}", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": f"a{i}"}, "logprobs": None, "finish_reason": "stop"}]}


async def _one_request(state: StateService, i: int, *, on_failure: str = "open") -> str:
    """What the request path does with the state layer; returns the cache result."""
    plan = state.cache.plan("chat", _body(i), {}, ON, team="t", data_class="internal")
    entry = await state.cache.lookup(plan, {"self", "vendor"})
    await state.limiter.acquire(key="k", team="t", key_limit=RPM, team_limit=RPM, tokens=10, on_failure=on_failure)  # type: ignore[arg-type]
    await state.budgets.check("t", Budget(daily_usd=1000), on_failure=on_failure)  # type: ignore[arg-type]
    if entry is None:
        await state.cache.store(plan, hosting="self", deployment="d", completion=_completion(i))
    return "hit" if entry is not None else "miss"


async def test_unreachable_redis_degrades_and_counts() -> None:
    hooks = Hooks()
    state = StateService.from_settings(UNREACHABLE, 0.25, hooks.on_error, hooks.on_health)
    await state.start()
    try:
        assert state.kind == "redis" and not state.healthy and hooks.health == [False]
        assert not await state.ping()
        started = time.perf_counter()
        assert [await _one_request(state, i % 3) for i in range(20)] == ["miss"] * 20  # fail open: served, never cached
        assert time.perf_counter() - started < 1.0
        ticket = await state.limiter.acquire(key="k", team="t", key_limit=RPM, team_limit=None, tokens=1)
        assert ticket.degraded and ticket.headers == {}
        status = await state.budgets.check("t", Budget(daily_usd=1))
        assert status is not None and status.degraded
        assert state.spend.record("r1", key="k", team="t", deployment="d", cost_usd=1.0)
        assert not await state.shared_stats.publish({"d": {"latency_ms": 1.0}})
        assert await state.shared_stats.fetch() == {}
        with pytest.raises(StateUnavailable):
            await state.spend.report("day")
        # Errors are counted per operation; the back-off keeps a dead Redis from being hammered.
        assert hooks.errors["ping"] >= 1
        assert sum(hooks.errors.values()) <= 6
        assert state.backend.guard.skipped > 50  # type: ignore[attr-defined]
    finally:
        await state.spend.stop(flush_seconds=0.1)
        await state.aclose()
    assert state.spend.lost == 1


async def test_fail_closed_refuses_with_503() -> None:
    state = StateService.from_settings(UNREACHABLE, 0.25)
    try:
        with pytest.raises(StateUnavailable) as caught:
            await state.limiter.acquire(key="k", team="t", key_limit=RPM, team_limit=None, tokens=1, on_failure="closed")
        assert caught.value.status == 503 and caught.value.headers["retry-after"] == "1"
        with pytest.raises(StateUnavailable):
            await state.budgets.check("t", Budget(daily_usd=1), on_failure="closed")
        # Requests without limits or budgets need no state, so nothing is refused.
        ticket = await state.limiter.acquire(key="k", team="t", key_limit=None, team_limit=None, tokens=1, on_failure="closed")
        assert not ticket.degraded
        assert await state.budgets.check("t", None, on_failure="closed") is None
    finally:
        await state.aclose()


async def test_frozen_redis_costs_at_most_the_timeout_then_recovers() -> None:
    with RedisServer() as server:
        hooks = Hooks()
        state = StateService.from_settings(server.url, 0.25, hooks.on_error, hooks.on_health, cooldown=0.5)
        await state.start()
        try:
            assert await _one_request(state, 0) == "miss"
            assert await _one_request(state, 0) == "hit"
            assert server.process is not None
            server.process.send_signal(signal.SIGSTOP)
            started = time.perf_counter()
            results = await asyncio.gather(*(_one_request(state, 0) for _ in range(20)))
            elapsed = time.perf_counter() - started
            assert results == ["miss"] * 20
            assert elapsed < 0.25 + 0.25  # one timeout for the calls in flight, the rest fail fast
            assert hooks.health == [True, False] and hooks.errors["cache_get"] >= 1
            server.process.send_signal(signal.SIGCONT)
            await _wait_healthy(state)
            assert await _one_request(state, 0) == "hit"
            assert hooks.health == [True, False, True]
        finally:
            await state.aclose()


async def _wait_healthy(state: StateService, within: float = 5.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        plan = state.cache.plan("chat", _body(99), {}, ON, team="probe", data_class="internal")
        await state.cache.lookup(plan, {"self"})
        if state.healthy:
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"the state backend did not recover within {within} s")


async def test_kill_and_restart_mid_traffic() -> None:
    with RedisServer() as server:
        hooks = Hooks()
        state = StateService.from_settings(server.url, 0.25, hooks.on_error, hooks.on_health, cooldown=1.0)
        state.spend._retry_max = 0.2  # retry spend promptly once Redis is back
        await state.start()
        stop = asyncio.Event()
        latencies: list[float] = []
        recorded: dict[str, int] = {}
        after_kill: set[str] = set()
        killed = asyncio.Event()

        async def client(worker: int) -> None:
            i = 0
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    await _one_request(state, i % 7)
                except RateLimitExceeded:
                    pytest.fail("the generous limit was hit")
                latencies.append(time.perf_counter() - started)
                request_id = f"w{worker}-{i}"
                nanos = (worker + 1) * 1000 + i
                if state.spend.record(request_id, key="k", team="t", deployment="d", cost_usd=nanos / 1e9):
                    recorded[request_id] = nanos
                    if killed.is_set():
                        after_kill.add(request_id)
                i += 1
                await asyncio.sleep(0.005)

        tasks = [asyncio.create_task(client(w)) for w in range(5)]
        restarted = RedisServer(port=server.port)
        try:
            await asyncio.sleep(0.5)
            server.kill()
            killed.set()
            await asyncio.sleep(1.5)  # traffic goes on against a dead Redis
            assert hooks.health == [True, False]
            during_outage = sum(hooks.errors.values())
            restarted.start()  # same port: the gateway must find it again by itself
            recovery = await _wait_healthy(state)
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            await state.spend.drain()
        try:
            assert hooks.health == [True, False, True]
            assert recovery < 1.0 + 0.5
            assert during_outage <= 10, hooks.errors  # about one probe per cooldown, plus the calls in flight
            assert max(latencies) < 0.25 * 3 + 0.1  # never worse than the timeouts of one request's calls
            assert after_kill, "no traffic recorded during the outage"
            # Exactly once on the restarted (empty) server: every entry recorded after the kill is there once,
            # and the total is the sum over the request ids it has markers for.
            redis = state.backend._redis  # type: ignore[attr-defined]
            prefix = state.backend.prefix  # type: ignore[attr-defined]
            markers = {k.decode().rsplit(":", 1)[1] async for k in redis.scan_iter(match=f"{prefix}{{spend}}:req:*")}
            assert after_kill <= markers
            day, month = await state.backend.spend_get("team", "t", *periods(time.time()))
            assert day == month == sum(recorded[r] for r in markers)
            assert await _one_request(state, 12345) == "miss" and await _one_request(state, 12345) == "hit"
        finally:
            await state.aclose()
            restarted.kill()


async def test_guard_backs_off_then_lets_one_probe_through() -> None:
    now = [0.0]
    hooks = Hooks()
    guard = CallGuard(timeout=0.05, failures=(ConnectionError,), cooldown=1.0, on_error=hooks.on_error,
                      on_health=hooks.on_health, clock=lambda: now[0])
    calls = 0
    up = False
    release = asyncio.Event()

    async def operation() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        if not up:
            raise ConnectionError("refused")
        return "ok"

    release.set()
    with pytest.raises(BackendUnavailable):
        await guard.call("op", operation)
    assert (calls, hooks.health, hooks.errors["op"]) == (1, [False], 1)
    for _ in range(10):  # within the cooldown nothing reaches the backend
        with pytest.raises(BackendUnavailable):
            await guard.call("op", operation)
    assert calls == 1 and guard.skipped == 10
    now[0] = 1.5
    up = True
    release.clear()
    probe = asyncio.create_task(guard.call("op", operation))
    await asyncio.sleep(0)
    with pytest.raises(BackendUnavailable):  # only one probe at a time
        await guard.call("op", operation)
    release.set()
    assert await probe == "ok"
    assert hooks.health == [False, True] and guard.healthy
    assert await guard.call("op", operation) == "ok"
    # A hanging call costs the timeout, and counts as a failure.
    release.clear()
    started = time.perf_counter()
    with pytest.raises(BackendUnavailable) as caught:
        await guard.call("op", operation)
    assert time.perf_counter() - started < 0.2 and isinstance(caught.value.__cause__, TimeoutError)
    assert hooks.health == [False, True, False]
