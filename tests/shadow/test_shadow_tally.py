"""The shadow tally: counters summed exactly once per shadow across processes, on the in-process backend and
a real Redis; Redis keys under one hash tag; the report's rates from the counters, checked by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio

from gateway.shadow.report import pair_report, shadow_report
from gateway.state import ShadowCounts, ShadowTally
from gateway.state.backend import ShadowEntry, StateBackend
from gateway.state.errors import BackendUnavailable, StateUnavailable
from gateway.state.memory import MemoryBackend
from gateway.state.redis_backend import SHADOW_TAG
from tests.state_support import redis_backend, redis_url

AT = 1_717_329_600.0  # 2024-06-02T12:00:00Z
DAY, MONTH = "20240602", "202406"
PAIR = ("support", "vendor", "qwen-self")


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[StateBackend]:
    if request.param == "memory":
        yield MemoryBackend()
    else:
        async with redis_backend(timeout=5.0) as b:
            yield b


def counts(pair: tuple[str, str, str] = PAIR, spend: dict[str, int] | None = None, **counters: int) -> ShadowCounts:
    return ShadowCounts(pair, counters, spend or {})


async def test_counters_add_up_per_pair_for_day_and_month(backend: StateBackend) -> None:
    tally = ShadowTally(backend)
    await tally.start()
    tally.record("s1", counts(requests=1, compared=1, tool_cases=1, tool_agree=1, spend={"qwen-self": 300}), at=AT)
    tally.record("s2", counts(requests=1, compared=1, tool_cases=1, spend={"qwen-self": 200}), at=AT)
    tally.record("s3", counts(("support", "vendor", "other"), requests=1, dropped=1, **{"dropped:budget": 1}), at=AT)
    tally.record("s4", counts(requests=1, failed=1), at=AT - 86_400)  # the day before, same month
    await tally.drain()
    await tally.stop()
    day = await tally.report("day", DAY)
    assert day.pairs[PAIR] == {"requests": 2, "compared": 2, "tool_cases": 2, "tool_agree": 1}
    assert day.pairs[("support", "vendor", "other")] == {"requests": 1, "dropped": 1, "dropped:budget": 1}
    assert day.spend == {"qwen-self": 500}
    month = await tally.report("month", MONTH)
    assert month.pairs[PAIR]["requests"] == 3 and month.pairs[PAIR]["failed"] == 1


async def test_names_with_any_character_stay_apart(backend: StateBackend) -> None:
    tally = ShadowTally(backend)
    await tally.start()
    odd = ("a|b", 'quote"d', "tab\tname")
    tally.record("s1", counts(odd, requests=1), at=AT)
    tally.record("s2", counts(("a", "b|quote\"d", "tab\tname"), requests=2), at=AT)
    await tally.drain()
    await tally.stop()
    pairs = (await tally.report("day", DAY)).pairs
    assert pairs == {odd: {"requests": 1}, ("a", "b|quote\"d", "tab\tname"): {"requests": 2}}


async def test_two_processes_sum_exactly_and_a_shadow_counts_once(backend: StateBackend) -> None:
    a, b = ShadowTally(backend), ShadowTally(backend)
    await a.start()
    await b.start()
    for i in range(200):
        (a if i % 2 else b).record(f"s{i}", counts(requests=1, compared=1, text_cases=1,
                                                    text_similarity_micros=333_333), at=AT)
    await asyncio.gather(a.drain(), b.drain())
    # The same shadow id again (a retried batch whose reply was lost): not counted twice.
    applied = await backend.shadow_add([ShadowEntry("s7", DAY, MONTH, (('["pair","x","y","z","requests"]', 1),))], 60)
    assert applied == 0
    await asyncio.gather(a.stop(), b.stop())
    c = (await a.report("day", DAY)).pairs[PAIR]
    assert c == {"requests": 200, "compared": 200, "text_cases": 200, "text_similarity_micros": 66_666_600}


class LostReplies:
    """Applies each batch, then reports failure for the first ``failures`` calls."""

    def __init__(self, inner: StateBackend, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def shadow_add(self, entries: Sequence[ShadowEntry], dedupe_ttl_s: int) -> int:
        self.calls += 1
        applied = await self.inner.shadow_add(entries, dedupe_ttl_s)
        if self.calls <= self.failures:
            raise BackendUnavailable("shadow_add", "reply lost")
        return applied


async def test_a_retried_batch_is_not_counted_twice(backend: StateBackend) -> None:
    lossy = LostReplies(backend, failures=2)
    tally = ShadowTally(lossy, retry_initial=0.001)  # type: ignore[arg-type]
    await tally.start()
    for i in range(30):
        tally.record(f"s{i}", counts(requests=1), at=AT)
    await tally.drain()
    await tally.stop()
    assert lossy.calls >= 3
    assert (await tally.report("day", DAY)).pairs[PAIR] == {"requests": 30}


async def test_a_full_queue_drops_and_counts() -> None:
    tally = ShadowTally(MemoryBackend(), max_queue=2)
    assert [tally.record(f"s{i}", counts(requests=1)) for i in range(4)] == [True, True, False, False]
    assert tally.dropped == 2


async def test_an_unreadable_backend_is_a_503_not_a_crash() -> None:
    class Down(MemoryBackend):
        async def shadow_period(self, period: str) -> dict[str, int]:
            raise BackendUnavailable("shadow_read", "down")

    with pytest.raises(StateUnavailable):
        await ShadowTally(Down()).report("day", DAY)


async def test_redis_keys_share_one_hash_tag() -> None:
    """Every key the tally script writes carries ``{shadow}``: on a Redis Cluster they share one slot."""
    async with redis_backend(timeout=5.0) as backend:
        tally = ShadowTally(backend)
        await tally.start()
        tally.record("s1", counts(requests=1, spend={"qwen-self": 5}), at=AT)
        await tally.drain()
        await tally.stop()
        client = redis.asyncio.Redis.from_url(redis_url())
        try:
            keys = sorted([k.decode() async for k in client.scan_iter(match=f"{backend.prefix}*")])
        finally:
            await client.aclose()
    assert keys == [f"{backend.prefix}{SHADOW_TAG}:{suffix}" for suffix in (f"d:{DAY}", "id:s1", f"m:{MONTH}")]


# ---------------------------------------------------------------- the report, by hand


def test_pair_report_rates_by_hand() -> None:
    c = {
        "requests": 10, "compared": 6, "failed": 1, "dropped": 3, "dropped:budget": 2, "dropped:saturated": 1,
        "failed:UpstreamTimeout": 1,
        "tool_cases": 4, "tool_agree": 3,
        "json_cases": 2, "json_checked": 2, "json_agree": 1, "json_valid_primary": 2, "json_valid_shadow": 1,
        "text_cases": 2, "text_similarity_micros": 1_500_000, "length_cases": 2, "length_ratio_micros": 2_500_000,
        "refusals_primary": 0, "refusals_shadow": 3,
        "primary_us": 600_000, "shadow_us": 900_000, "ttft_cases": 2, "primary_ttft_us": 100_000,
        "primary_nanos": 4_000, "shadow_nanos": 1_000,
    }
    r = pair_report(PAIR, c)
    assert (r["requests"], r["compared"], r["failed"], r["dropped"]) == (10, 6, 1, 3)
    assert r["drops"] == {"budget": 2, "saturated": 1} and r["failures"] == {"UpstreamTimeout": 1}
    assert r["tool_call_agreement"] == 0.75            # 3 of 4
    assert r["json_agreement"] == 0.5                  # 1 of 2
    assert (r["json_valid_primary"], r["json_valid_shadow"]) == (1.0, 0.5)
    assert r["text_similarity_mean"] == 0.75           # (1.5 / 2)
    assert r["length_ratio_mean"] == 1.25
    assert (r["refusal_rate_primary"], r["refusal_rate_shadow"]) == (0.0, 0.5)  # 3 of 6 compared
    assert r["latency_ratio"] == 1.5                   # 900 ms over 600 ms
    assert (r["primary_latency_ms_mean"], r["shadow_latency_ms_mean"]) == (100.0, 150.0)
    assert r["primary_ttft_ms_mean"] == 50.0
    assert r["cost_ratio"] == 0.25
    assert (r["primary_cost_usd"], r["shadow_cost_usd"]) == (0.000004, 0.000001)


def test_no_evidence_is_null_not_zero() -> None:
    r = pair_report(PAIR, {"requests": 2, "dropped": 2, "dropped:budget": 2})
    for rate in ("tool_call_agreement", "json_agreement", "text_similarity_mean", "latency_ratio", "cost_ratio",
                 "refusal_rate_shadow"):
        assert r[rate] is None, rate


async def test_shadow_report_filters_by_model_and_sums_spend() -> None:
    backend = MemoryBackend()
    tally = ShadowTally(backend)
    await tally.start()
    tally.record("a", counts(requests=1, spend={"qwen-self": 250_000_000}), at=AT)
    tally.record("b", counts(("other", "vendor", "qwen-self"), requests=1, spend={"embedder": 50_000_000}), at=AT)
    await tally.drain()
    await tally.stop()
    report = shadow_report(await tally.report("day", DAY), model="support", budget_daily_usd=5.0)
    assert [(p["model"], p["requests"]) for p in report["pairs"]] == [("support", 1)]
    assert report["spend_usd"] == {"embedder": 0.05, "qwen-self": 0.25} and report["spend_total_usd"] == 0.3
    assert report["daily_budget_usd"] == 5.0


# ---------------------------------------------------------------- the daily shadow budget


async def test_the_budget_reserves_what_shadows_under_way_may_cost() -> None:
    from gateway.shadow.budget import ShadowBudget

    now = [AT]
    backend = MemoryBackend()
    tally = ShadowTally(backend, clock=lambda: now[0])
    await tally.start()
    tally.record("earlier", counts(requests=1, spend={"qwen-self": 400_000_000}), at=AT)  # $0.40 spent today
    await tally.drain()
    budget = ShadowBudget(tally, clock=lambda: now[0])
    assert await budget.reserve(1.0, 0.25) == 0.25
    assert await budget.reserve(1.0, 0.25) == 0.25       # 0.40 + 0.25 + 0.25 = 0.90
    assert await budget.reserve(1.0, 0.25) is None       # would be 1.15: not sent
    budget.settle(0.25, 0.05)                            # one finished, cheaper than reserved
    assert await budget.reserve(1.0, 0.25) == 0.25       # 0.40 + 0.05 + 0.25 + 0.25 = 0.95
    assert await budget.reserve(None, 100.0) == 0.0, "no budget: nothing to reserve"
    for _ in range(3):
        budget.settle(0.25, 0.25)                        # the others finish
    now[0] = AT + 86_400                                 # the next UTC day starts from nothing
    assert await budget.reserve(1.0, 0.6) == 0.6
    await tally.stop()


async def test_an_unreadable_tally_stops_shadows_money_fails_closed() -> None:
    from gateway.shadow.budget import ShadowBudget

    class Down(MemoryBackend):
        async def shadow_period(self, period: str) -> dict[str, int]:
            raise BackendUnavailable("shadow_read", "down")

    budget = ShadowBudget(ShadowTally(Down()))
    assert await budget.reserve(5.0, 0.001) is None
    assert await budget.reserve(None, 0.001) == 0.0, "without a budget nothing needs reading"
