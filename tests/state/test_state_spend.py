"""Spend: exactly-once, exact sums under concurrency and retries; budgets; the admin report; shared stats."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

import pytest

from gateway.core.errors import BudgetExceeded
from gateway.policy.models import Budget
from gateway.state.backend import SpendEntry, StateBackend
from gateway.state.budget import BudgetChecker
from gateway.state.errors import BackendUnavailable, StateUnavailable
from gateway.state.memory import MemoryBackend
from gateway.state.redis_backend import RedisBackend
from gateway.state.shared_stats import SharedStats, merge
from gateway.state.spend import SpendRecorder, periods, to_nanos
from tests.state_support import redis_backend

AT = 1_717_329_600.0  # 2024-06-02T12:00:00Z
DAY, MONTH = "20240602", "202406"


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[StateBackend]:
    if request.param == "memory":
        yield MemoryBackend()
    else:
        async with redis_backend(timeout=5.0) as b:
            yield b


def test_periods_are_utc_days_and_months() -> None:
    assert periods(AT) == (DAY, MONTH)
    assert periods(1_719_791_999.0) == ("20240630", "202406")  # 23:59:59Z
    assert periods(1_719_792_000.0) == ("20240701", "202407")


@pytest.mark.parametrize(("usd", "nanos"), [(0.0, 0), (1.0, 10**9), (0.000_000_1, 100), (0.1 + 0.2, 300_000_000), (2.5e-10, 0)])
def test_to_nanos(usd: float, nanos: int) -> None:
    assert to_nanos(usd) == nanos


async def test_record_counts_key_team_deployment_for_day_and_month(backend: StateBackend) -> None:
    spend = SpendRecorder(backend)
    await spend.start()
    spend.record("r1", key="alice", team="research", deployment="qwen", cost_usd=0.25, at=AT)
    spend.record("r2", key="bob", team="research", deployment="gpt-4o", cost_usd=1.5, at=AT)
    spend.record("r3", key="alice", team="research", deployment="qwen", cost_usd=0.125, at=AT - 86_400)  # previous day
    await spend.drain()
    await spend.stop()
    day = await spend.report("day", DAY)
    assert day.usd("key") == {"alice": 0.25, "bob": 1.5}
    assert day.usd("team") == {"research": 1.75}
    assert day.usd("deployment") == {"qwen": 0.25, "gpt-4o": 1.5}
    month = await spend.report("month", MONTH)
    assert month.usd("team") == {"research": 1.875}
    assert month.to_dict()["key"] == {"alice": 0.375, "bob": 1.5}
    assert await backend.spend_get("team", "research", DAY, MONTH) == (1_750_000_000, 1_875_000_000)


async def test_duplicates_are_counted_once(backend: StateBackend) -> None:
    entry = SpendEntry("same", "k", "t", "d", 123, DAY, MONTH)
    assert await backend.spend_add([entry, entry], 60) == 1
    assert await backend.spend_add([entry], 60) == 0
    assert await backend.spend_get("key", "k", DAY, MONTH) == (123, 123)


async def test_thousand_concurrent_increments_with_duplicates_sum_exactly() -> None:
    """1000 records of 600 unique request ids, from concurrent tasks on two processes' recorders."""
    rng = random.Random(5)
    costs = {f"req-{i}": rng.uniform(0.000_001, 0.05) for i in range(600)}
    records = [rng.choice(list(costs)) for _ in range(400)] + list(costs)
    rng.shuffle(records)
    async with redis_backend(timeout=5.0) as first, redis_backend(prefix=first.prefix, timeout=5.0) as second:
        recorders = [SpendRecorder(first, batch_size=16), SpendRecorder(second, batch_size=16)]
        for r in recorders:
            await r.start()

        async def client(worker: int) -> None:
            for i, request_id in enumerate(records[worker::20]):
                recorders[(worker + i) % 2].record(
                    request_id, key=f"key-{worker % 3}", team="team", deployment="dep", cost_usd=costs[request_id], at=AT
                )
                await asyncio.sleep(0)

        await asyncio.gather(*(client(w) for w in range(20)))
        for r in recorders:
            await r.drain()
            await r.stop()
        assert sum(r.applied for r in recorders) == 600
        assert sum(r.duplicates for r in recorders) == 400
        expected = sum(to_nanos(c) for c in costs.values())
        assert await first.spend_get("team", "team", DAY, MONTH) == (expected, expected)
        assert await second.spend_get("deployment", "dep", DAY, MONTH) == (expected, expected)
        per_key = await first.spend_period("key", f"d:{DAY}")
        assert sum(per_key.values()) == expected
        report = await recorders[0].report("day", DAY)
        assert report.usd("team")["team"] == expected / 1e9


class FlakyBackend:
    """Applies every spend batch, then reports a failure for the first ``failures`` calls (a lost reply)."""

    def __init__(self, inner: StateBackend, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def spend_add(self, entries: Sequence[SpendEntry], dedupe_ttl_s: int) -> int:
        self.calls += 1
        applied = await self.inner.spend_add(entries, dedupe_ttl_s)
        if self.calls <= self.failures:
            raise BackendUnavailable("spend_add", "reply lost")
        return applied


async def test_retries_after_a_lost_reply_do_not_double_count(backend: StateBackend) -> None:
    flaky = FlakyBackend(backend, failures=3)
    spend = SpendRecorder(flaky, retry_initial=0.001)  # type: ignore[arg-type]
    await spend.start()
    for i in range(50):
        spend.record(f"r{i}", key="k", team="t", deployment="d", cost_usd=0.01, at=AT)
    await spend.drain()
    await spend.stop()
    assert flaky.calls >= 4 and spend.retries == 3
    assert await backend.spend_get("team", "t", DAY, MONTH) == (50 * 10_000_000, 50 * 10_000_000)


async def test_full_queue_drops_and_counts() -> None:
    spend = SpendRecorder(MemoryBackend(), max_queue=3)
    results = [spend.record(f"r{i}", key="k", team="t", deployment="d", cost_usd=1.0) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert (spend.recorded, spend.dropped, spend.pending) == (3, 2, 3)


# ---- budgets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _spend(backend: StateBackend, team: str, usd: float, request_id: str) -> None:
    await backend.spend_add([SpendEntry(request_id, "k", team, "d", to_nanos(usd), *periods(AT))], 60)


async def test_budget_status_over_and_pacing(backend: StateBackend) -> None:
    clock = Clock()
    checker = BudgetChecker(backend, clock=clock, wall_clock=lambda: AT)
    deny = Budget(daily_usd=10, monthly_usd=100)
    pace = Budget(daily_usd=10, on_exceed="pace", pace_from=0.5)
    status = await checker.check("t", deny)
    assert status is not None and not status.over and status.remaining_day_usd == 10
    await _spend(backend, "t", 6, "a")
    clock.now += 1.1
    status = await checker.check("t", pace)
    assert status is not None and status.pacing and not status.over and status.spent_day_usd == 6
    assert not (await checker.check("t", deny)).pacing  # type: ignore[union-attr]
    await _spend(backend, "t", 4, "b")
    clock.now += 1.1
    with pytest.raises(BudgetExceeded) as caught:
        await checker.check("t", deny)
    assert caught.value.status == 429 and caught.value.type == "insufficient_quota" and "daily" in caught.value.message
    status = await checker.check("t", pace)  # pace never refuses
    assert status is not None and status.over and status.pacing and status.remaining_day_usd == 0
    assert await checker.check("t", None) is None


async def test_budget_reads_at_most_once_per_second_per_team(backend: StateBackend) -> None:
    clock = Clock()
    checker = BudgetChecker(backend, clock=clock, wall_clock=lambda: AT)
    budget = Budget(daily_usd=10)
    await asyncio.gather(*(checker.status("t", budget) for _ in range(100)))
    assert checker.reads == 1
    await _spend(backend, "t", 3, "x")
    assert (await checker.status("t", budget)).spent_day_usd == 0  # cached
    clock.now += 1.01
    assert (await checker.status("t", budget)).spent_day_usd == 3
    await checker.status("u", budget)
    assert checker.reads == 3


async def test_budget_month_limit() -> None:
    backend = MemoryBackend()
    checker = BudgetChecker(backend, wall_clock=lambda: AT)
    await _spend(backend, "t", 50, "m")
    with pytest.raises(BudgetExceeded) as caught:
        await checker.check("t", Budget(daily_usd=100, monthly_usd=50))
    assert "monthly" in caught.value.message


# ---- shared live statistics


def test_merge_weights_by_samples() -> None:
    merged = merge([
        {"deployments": {"a": {"ttft_ms": 100.0, "error_rate": 0.0, "samples": 30}, "b": {"ttft_ms": None}}, "open": []},
        {"deployments": {"a": {"ttft_ms": 200.0, "error_rate": 0.5, "samples": 10}}, "open": ["a", "c"]},
    ])
    assert merged["a"] == {"ttft_ms": 125.0, "error_rate": 0.125, "samples": 40, "processes": 2, "breaker_open": 1}
    assert merged["b"] == {"samples": 0, "processes": 1, "breaker_open": 0}
    assert merged["c"] == {"samples": 0, "processes": 0, "breaker_open": 1}


async def test_shared_stats_between_two_processes() -> None:
    async with redis_backend() as first, redis_backend(prefix=first.prefix) as second:
        one = SharedStats(first, process_id="p1", ttl_s=10)
        two = SharedStats(second, process_id="p2", ttl_s=10)
        assert await one.publish({"qwen": {"latency_ms": 100.0, "tokens_per_second": 50.0}})
        assert await two.publish({"qwen": {"latency_ms": 300.0, "tokens_per_second": None}}, breakers_open={"qwen"})
        merged = await one.fetch()
        assert merged["qwen"] == {
            "latency_ms": 200.0, "tokens_per_second": 50.0, "samples": 0, "processes": 2, "breaker_open": 1,
        }
        others = await one.fetch(include_self=False)
        assert others["qwen"]["latency_ms"] == 300.0 and others["qwen"]["processes"] == 1


async def test_shared_stats_forget_processes_that_stop_publishing() -> None:
    async with redis_backend() as backend:
        assert isinstance(backend, RedisBackend)
        gone = SharedStats(backend, process_id="gone", ttl_s=0.2)
        alive = SharedStats(backend, process_id="alive", ttl_s=0.2)
        await gone.publish({"d": {"latency_ms": 1.0}})
        await asyncio.sleep(0.3)
        await alive.publish({"d": {"latency_ms": 3.0}})
        assert (await alive.fetch())["d"]["latency_ms"] == 3.0
        assert await backend._redis.hkeys(f"{backend.prefix}stats") == [b"alive"]


async def test_budget_fails_open_or_closed() -> None:
    class Down(MemoryBackend):
        async def spend_get(self, *args: object) -> tuple[int, int]:  # type: ignore[override]
            raise BackendUnavailable("spend_read", "down")

    checker = BudgetChecker(Down())
    status = await checker.check("t", Budget(daily_usd=1))
    assert status is not None and status.degraded and not status.over
    with pytest.raises(StateUnavailable):
        await BudgetChecker(Down()).check("t", Budget(daily_usd=1), on_failure="closed")
