"""Load-aware routing in process: the server's queue in LiveStats, the engine's expected latency and its
spill, and the executor's burst check, against the HTTP simulator with serving slots."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from gateway.core.types import Endpoint, RequestFacts
from gateway.policy.loader import parse_policy
from gateway.routing.engine import decide, expected_latency_ms
from gateway.routing.executor import passthrough
from gateway.routing.runtime import Runtime
from gateway.routing.server_load import ServerLoad
from gateway.routing.stats import DeploymentStats, LiveStats
from gateway.simulator.server import SimulatorServer

# self: cheap, 100 ms + 200 tokens at 100/s = 2.1 s per request; vendor: dear, 0.3 s + 2 s = 2.3 s.
POLICY_TEXT = """
defaults: {{objective: cost, expected_output_tokens: 200}}
deployments:
  self:   {{type: llamacpp, model: m, api_base: "{self_base}", hosting: self, price: {{gpu_hour_usd: 1, tokens_per_second: 1000}},
           latency_prior: {{ttft_ms: 100, tokens_per_second: 100}}, retry: {{attempts: 1}},
           load_source: {{type: llamacpp, interval_seconds: 0.05}}}}
  vendor: {{type: openai, model: v, api_base: "{vendor_base}", api_key: k, hosting: vendor,
           price: {{input_per_mtok: 2.5, output_per_mtok: 10}}, latency_prior: {{ttft_ms: 300, tokens_per_second: 100}}}}
models:
  auto: {{deployments: [self, vendor]}}
  fast: {{deployments: [self, vendor], objective: latency}}
rules:
  - name: interactive
    when: {{headers: {{x-tier: [interactive]}}}}
    latency_slo_ms: 3000
"""
POLICY = parse_policy(POLICY_TEXT.format(self_base="http://127.0.0.1:1/v1", vendor_base="http://127.0.0.1:2/v1")).policy
NOW = 1_000_000.0


def facts(model: str = "auto", interactive: bool = True) -> RequestFacts:
    headers = {"x-tier": "interactive"} if interactive else {}
    return RequestFacts(Endpoint.CHAT, model, prompt_tokens=20, headers=headers)


def loaded(running: float, waiting: float = 0, slots: int | None = 2, at: float = NOW) -> DeploymentStats:
    load = ServerLoad(running, waiting, slots, 0.3, at)
    return DeploymentStats(server=load, server_busy=load.busy)


# ---------------------------------------------------------------- the engine
@pytest.mark.parametrize("self_stats, primary, spilled", [
    (DeploymentStats(), "self", ()),                         # no report: plans as if idle
    (loaded(1), "self", ()),                                 # a slot is free
    (loaded(2), "vendor", ("self",)),                        # full: 2.1 s + 1.05 s wait > 3 s SLO
    (loaded(2, slots=4), "self", ()),                        # the same load on a bigger server fits
    (loaded(2, waiting=3, slots=None), "vendor", ("self",)),  # slots unknown, but a queue is a queue
    (loaded(2, slots=None), "self", ()),                     # slots unknown and no queue: nothing to go on
])
def test_a_queue_that_would_break_the_slo_moves_the_cheap_server_behind(
        self_stats: DeploymentStats, primary: str, spilled: tuple[str, ...]) -> None:
    d = decide(facts(), POLICY, {"self": self_stats})
    assert d.targets[0].deployment == primary
    assert [t.deployment for t in d.targets] == [primary, "vendor" if primary == "self" else "self"]
    assert d.spilled == spilled


def test_targets_carry_the_estimate_and_its_queue_part() -> None:
    d = decide(facts(), POLICY, {"self": loaded(3)})
    by_name = {t.deployment: t for t in d.targets}
    assert by_name["self"].queue_ms == pytest.approx(2 * 2100 / 2)  # 2 ahead, 2 slots, 2.1 s each
    assert by_name["self"].expected_latency_ms == pytest.approx(2100 + 2100)
    assert by_name["vendor"].queue_ms == 0 and by_name["vendor"].expected_latency_ms == pytest.approx(2300)


def test_the_measured_mean_latency_drains_the_queue() -> None:
    stats = dataclasses.replace(loaded(2), latency_ms=500.0)  # short requests ahead: the wait is short
    assert expected_latency_ms(POLICY.deployments["self"], stats, 200) == pytest.approx(2100 + 250)


def test_without_an_slo_the_cost_objective_ignores_the_queue() -> None:
    d = decide(facts(interactive=False), POLICY, {"self": loaded(10)})
    assert d.targets[0].deployment == "self" and d.spilled == ()


def test_the_latency_objective_counts_the_queue_too() -> None:
    assert decide(facts("fast", interactive=False), POLICY, {}).targets[0].deployment == "self"
    d = decide(facts("fast", interactive=False), POLICY, {"self": loaded(2)})
    assert d.targets[0].deployment == "vendor" and d.spilled == ("self",)


def test_when_every_target_misses_the_slo_the_queue_still_orders_them() -> None:
    slow_vendor = DeploymentStats(ttft_ms=9000)
    d = decide(facts(), POLICY, {"self": loaded(2), "vendor": slow_vendor})
    assert d.targets[0].deployment == "self", "3.15 s beats 11 s: both miss, the faster goes first"
    assert d.spilled == ()


# ---------------------------------------------------------------- LiveStats
def test_between_polls_the_estimate_follows_this_process_calls() -> None:
    stats = LiveStats(snapshot_interval=3600)  # only load changes may refresh the snapshot here
    stats.track_load("self", max_age_s=10)
    stats.record_load("self", ServerLoad(1, 0, 2, None, time.time()))
    assert stats.snapshot()["self"].server_busy == 1
    stats.started("self")
    stats.started("self")
    assert stats.snapshot()["self"].server_busy == 3, "the snapshot must see each call at once"
    stats.finished("self")
    assert stats.snapshot()["self"].server_busy == 2
    stats.record_load("self", ServerLoad(1, 1, 2, None, time.time()))  # the server now counts our call too
    stats.started("self")
    assert stats.server_estimate("self")[1] == 3  # type: ignore[index]


def test_calls_started_while_the_poll_travels_count_on_top() -> None:
    stats = LiveStats()
    stats.track_load("self", max_age_s=10)
    stats.started("self")
    asked_with = stats.in_flight("self")        # the poll leaves: one call of ours on the server
    stats.started("self")                       # another starts while the answer travels
    stats.record_load("self", ServerLoad(3, 0, 4, None, time.time()), in_flight_then=asked_with)
    assert stats.server_estimate("self")[1] == 4  # type: ignore[index]


def test_the_estimate_never_drops_below_this_process_calls() -> None:
    stats = LiveStats()
    stats.track_load("self", max_age_s=10)
    for _ in range(3):
        stats.started("self")
    stats.record_load("self", ServerLoad(0, 0, 2, None, time.time()))  # e.g. read before our calls arrived
    assert stats.server_estimate("self")[1] == 3  # type: ignore[index]


def test_a_stale_or_untracked_reading_is_ignored() -> None:
    stats = LiveStats()
    stats.record_load("self", ServerLoad(5, 5, 2, None, time.time()))
    assert stats.server_estimate("self") is None, "a deployment without a load source takes no readings"
    stats.track_load("self", max_age_s=2)
    stats.record_load("self", ServerLoad(5, 5, 2, None, time.time() - 3))
    assert stats.server_estimate("self") is None
    assert stats.snapshot(now=1e9)["self"].server is None


def test_readings_from_another_replica_replace_only_older_ones() -> None:
    stats = LiveStats()
    stats.track_load("self", max_age_s=10)
    now = time.time()
    stats.record_load("self", ServerLoad(1, 0, 2, None, now))
    stats.merge_remote({"self": {"processes": 2, "load": ServerLoad(4, 4, 2, None, now - 1).to_dict()}})
    assert stats.load_reading("self").running == 1  # type: ignore[union-attr]
    stats.merge_remote({"self": {"processes": 2, "load": ServerLoad(4, 4, 2, None, now + 1).to_dict()}})
    assert stats.load_reading("self").running == 4  # type: ignore[union-attr]
    assert "load" not in stats.export().get("self", {}), "a reading received is not published again as ours"


# ---------------------------------------------------------------- the executor, against the simulator
async def test_a_burst_beyond_the_free_slots_spills_at_once() -> None:
    """Six requests decided on one snapshot: the executor's check sends the four beyond the two slots to
    the vendor without waiting, and the server never queues."""
    async with SimulatorServer(slots=2, ttft_ms=50, tokens_per_second=200, output_tokens=200) as own, \
            SimulatorServer(ttft_ms=10, output_tokens=20) as vendor:
        runtime = Runtime()
        runtime.install(parse_policy(POLICY_TEXT.format(self_base=own.openai_base_url, vendor_base=vendor.openai_base_url)))
        try:
            for _ in range(100):
                if runtime.stats.server_estimate("self") is not None:
                    break
                await asyncio.sleep(0.02)
            snapshot = runtime.stats.snapshot()
            decisions = [decide(facts(), runtime.snapshot.policy, snapshot) for _ in range(6)]
            assert all(d.targets[0].deployment == "self" for d in decisions), "the server was idle at decision time"

            async def run(decision):  # type: ignore[no-untyped-def]
                started = time.monotonic()
                execution = await runtime.executor.execute(
                    decision, runtime.snapshot.policy.deployments, runtime.snapshot.providers,
                    request_for=passthrough(Endpoint.CHAT, {"messages": [{"role": "user", "content": "hi"}]}),
                    stream=False, request_id="r",
                    deadline=time.monotonic() + 30)
                return execution, time.monotonic() - started

            results = await asyncio.gather(*(run(d) for d in decisions))
            served = [e.deployment.name for e, _ in results]
            assert sorted(served) == ["self", "self", "vendor", "vendor", "vendor", "vendor"]
            spilled = [e for e, _ in results if e.deployment.name == "vendor"]
            assert all([f.error for f in e.failures] == ["queue_over_slo"] for e in spilled)
            assert own.simulator.slots.waiting == 0
            assert max(own.simulator.ledger.snapshot()["by_model"].values()) == 2
        finally:
            await runtime.aclose()


async def test_without_a_load_source_the_burst_queues_on_the_server() -> None:
    async with SimulatorServer(slots=2, ttft_ms=50, tokens_per_second=400, output_tokens=100) as own, \
            SimulatorServer(ttft_ms=10, output_tokens=20) as vendor:
        text = POLICY_TEXT.format(self_base=own.openai_base_url, vendor_base=vendor.openai_base_url)
        runtime = Runtime()
        runtime.install(parse_policy(text.replace("load_source: {type: llamacpp, interval_seconds: 0.05}", "")))
        try:
            decisions = [decide(facts(), runtime.snapshot.policy, runtime.stats.snapshot()) for _ in range(6)]
            waits = []

            async def run(decision):  # type: ignore[no-untyped-def]
                execution = await runtime.executor.execute(
                    decision, runtime.snapshot.policy.deployments, runtime.snapshot.providers,
                    request_for=passthrough(Endpoint.CHAT, {"messages": [{"role": "user", "content": "hi"}]}),
                    stream=False, request_id="r",
                    deadline=time.monotonic() + 30)
                return execution.deployment.name

            task = asyncio.gather(*(run(d) for d in decisions))
            for _ in range(50):
                waits.append(own.simulator.slots.waiting)
                await asyncio.sleep(0.01)
            assert await task == ["self"] * 6
            assert max(waits) == 4, "four requests waited in the server's queue"
        finally:
            await runtime.aclose()
