"""Circuit breaker state machine, concurrency gates and active health checks, in isolation."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from gateway.core.types import BreakerState
from gateway.policy.loader import parse_policy
from gateway.routing.breaker import CircuitBreaker
from gateway.routing.runtime import Runtime
from gateway.routing.saturation import ConcurrencyGate
from tests import servers


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_consecutive_failures_and_recovers_through_one_probe() -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    b = CircuitBreaker("d", consecutive_failures=3, open_seconds=10, clock=clock, on_change=lambda _, s: changes.append(s))
    for _ in range(2):
        b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.now = 9.9
    assert not b.allow()
    clock.now = 10.0
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and not b.allow(), "half-open lets exactly one probe through"
    b.record_failure()
    assert b.state is BreakerState.OPEN, "a failed probe opens it again"
    clock.now = 20.0
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_breaker_opens_on_failure_ratio() -> None:
    b = CircuitBreaker("d", consecutive_failures=100, failure_ratio=0.5, window=10, min_calls=10, clock=Clock())
    for i in range(9):
        (b.record_failure if i % 2 else b.record_success)()
    assert b.state is BreakerState.CLOSED, "fewer than min_calls"
    b.record_failure()
    assert b.state is BreakerState.OPEN, "5 of 10 failed"


def test_released_probe_lets_another_through() -> None:
    clock = Clock()
    b = CircuitBreaker("d", consecutive_failures=1, open_seconds=1, clock=clock)
    b.record_failure()
    clock.now = 1
    assert b.allow() and not b.allow()
    b.release_probe()
    assert b.allow()


async def test_breaker_announces_half_open_on_time() -> None:
    changes: list[BreakerState] = []
    b = CircuitBreaker("d", consecutive_failures=1, open_seconds=0.05, on_change=lambda _, s: changes.append(s))
    b.record_failure()
    await asyncio.sleep(0.1)
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN], "without a timer nobody would look again"


async def test_gate_spills_or_waits_briefly() -> None:
    gate = ConcurrencyGate(2)
    assert gate.try_acquire() and gate.try_acquire() and not gate.try_acquire()
    assert not await gate.acquire(0), "no queueing: spill at once"
    assert not await gate.acquire(0.02), "nobody released within the wait"
    waiter = asyncio.ensure_future(gate.acquire(1.0))
    await asyncio.sleep(0.01)
    gate.release()
    assert await waiter, "a released slot goes to the waiter"
    assert gate.in_use == 2
    gate.release()
    gate.release()
    assert gate.in_use == 0


async def test_active_health_checks_open_and_close_the_breaker() -> None:
    port = servers.free_port()
    loaded = parse_policy(f"""
deployments:
  d:
    type: vllm
    model: m
    api_base: http://127.0.0.1:{port}/v1
    hosting: self
    health_check: {{interval_seconds: 0.05, failures_to_open: 2}}
models:
  m: {{deployments: [d]}}
""")
    runtime = Runtime()
    runtime.install(loaded)
    try:
        await _until(lambda: runtime.breakers["d"].state is BreakerState.OPEN)
        assert not runtime.stats.snapshot(now=1e9)["d"].healthy, "the engine sees it as unhealthy"
        async def models(_: web.Request) -> web.Response:
            return web.json_response({"object": "list", "data": []})

        app = web.Application()
        app.router.add_get("/v1/models", models)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await _until(lambda: runtime.breakers["d"].state is BreakerState.CLOSED)
        finally:
            await runner.cleanup()
    finally:
        await runtime.aclose()


async def _until(predicate, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_gate_never_loses_a_slot_when_a_hand_over_races_the_timeout() -> None:
    loop = asyncio.get_running_loop()
    for trial in range(200):
        gate = ConcurrencyGate(1)
        assert gate.try_acquire()
        wait = 0.002
        offset = (trial % 21 - 10) * 0.0001  # release from 1 ms before to 1 ms after the timeout
        loop.call_at(loop.time() + wait + offset, gate.release)
        got = await gate.acquire(wait)
        await asyncio.sleep(0.003)  # let the late releases land
        assert gate.in_use == (1 if got else 0), f"trial {trial}: acquired={got}, in use {gate.in_use}"
        if got:
            gate.release()
        assert gate.try_acquire(), f"trial {trial}: a slot was lost"


async def test_gate_passes_a_slot_on_when_its_waiter_is_cancelled() -> None:
    gate = ConcurrencyGate(1)
    assert gate.try_acquire()
    first = asyncio.ensure_future(gate.acquire(5))
    second = asyncio.ensure_future(gate.acquire(5))
    await asyncio.sleep(0)
    gate.release()  # handed to the first waiter...
    first.cancel()  # ...which is cancelled before it runs: the slot must go on to the second
    assert await second is True
    with pytest.raises(asyncio.CancelledError):
        await first
    assert gate.in_use == 1
