"""Polling servers' load pages (routing/load_poller.py) over real HTTP: the simulator's slots under each
load-source type, a server that stops answering, a page of the wrong kind, and two replicas sharing one
server's readings through a private redis-server (one polls, both route on it)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from gateway.policy.loader import parse_policy
from gateway.policy.models import Deployment
from gateway.routing.load_poller import LoadPoller, source_address
from gateway.routing.runtime import Runtime
from gateway.routing.sharing import SharedStatsLoop
from gateway.routing.stats import LiveStats
from gateway.simulator.server import SimulatorServer
from gateway.simulator.serving_slots import ServingSlots
from gateway.state import StateService
from tests.redis_support import RedisServer


def deployment(api_base: str, source: str, **extra: object) -> Deployment:
    return Deployment(name="self", type="llamacpp", model="m", api_base=api_base, hosting="self",
                      load_source={"type": source, "interval_seconds": 0.05, **extra})


@contextlib.asynccontextmanager
async def busy(sim: SimulatorServer, streams: int) -> AsyncIterator[None]:
    """``streams`` generations open on the simulator until the block ends."""
    client = httpx.AsyncClient(base_url=sim.openai_base_url, timeout=30)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}

    async def one() -> None:
        async with client.stream("POST", "/chat/completions", json=body) as resp:
            async for _ in resp.aiter_bytes():
                pass

    tasks = [asyncio.create_task(one()) for _ in range(streams)]
    try:
        for _ in range(200):
            if sim.simulator.slots.running + sim.simulator.slots.waiting == streams:
                break
            await asyncio.sleep(0.01)
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()


@pytest.mark.parametrize("source, slots, running, waiting", [
    ("llamacpp", 1, 1, 2),          # slot count from /props
    ("vllm", None, 1, 2),
    ("sglang", None, 1, 2),
    ("llamacpp_slots", 1, 1, 0),    # /slots shows busy slots, not the queue
])
async def test_each_source_type_reads_the_simulator_queue(source: str, slots: int | None, running: int,
                                                          waiting: int) -> None:
    async with SimulatorServer(slots=1, ttft_ms=0, tokens_per_second=2, output_tokens=100) as sim:
        stats = LiveStats()
        poller = LoadPoller(stats)
        poller.restart({"self": deployment(sim.openai_base_url, source)})
        poller.stop()  # drive the polls by hand
        try:
            async with busy(sim, 3):
                load = await poller.poll("self")
            assert load is not None
            assert (load.running, load.waiting, load.slots) == (running, waiting, slots)
            assert stats.server_estimate("self") is not None
            assert abs(load.at - time.time()) < 5
        finally:
            await poller.aclose()


async def test_the_policy_slot_count_wins_over_props() -> None:
    async with SimulatorServer(slots=1) as sim:
        poller = LoadPoller(LiveStats())
        poller.restart({"self": deployment(sim.openai_base_url, "llamacpp", slots=8)})
        poller.stop()
        try:
            load = await poller.poll("self")
            assert load is not None and load.slots == 8
        finally:
            await poller.aclose()


async def test_an_unreachable_server_is_forgotten_after_max_age(caplog: pytest.LogCaptureFixture) -> None:
    clock = [1000.0]
    stats = LiveStats()
    async with SimulatorServer(slots=2) as sim:
        dep = deployment(sim.openai_base_url, "llamacpp", max_age_seconds=2)
        poller = LoadPoller(stats, clock=lambda: clock[0])
        poller.restart({"self": dep})
        poller.stop()
        assert await poller.poll("self") is not None
    # The server is gone (its port closed).
    assert await poller.poll("self") is None
    assert stats.load_reading("self") is not None, "one failed poll keeps the last reading while it is fresh"
    clock[0] += 3
    assert await poller.poll("self") is None
    assert stats.load_reading("self") is None
    assert sum("cannot be read" in r.message for r in caplog.records) == 1, "logged once per failing streak"
    await poller.aclose()


async def test_a_page_of_another_kind_is_not_read_as_idle(caplog: pytest.LogCaptureFixture) -> None:
    async with SimulatorServer() as sim:
        stats = LiveStats()
        poller = LoadPoller(stats)
        poller.restart({"self": deployment(sim.openai_base_url, "llamacpp_slots", url=f"{sim.url}/metrics")})
        poller.stop()
        try:
            assert await poller.poll("self") is None
            assert stats.load_reading("self") is None
            assert any("not JSON" in r.message for r in caplog.records)
        finally:
            await poller.aclose()


@pytest.mark.parametrize("api_base, source, url, expected", [
    ("http://10.0.0.5:8080/v1", "llamacpp", None, ("http://10.0.0.5:8080", "/metrics", "/props")),
    ("http://h:8000/v1/", "vllm", None, ("http://h:8000", "/metrics", None)),
    ("http://h:8080/v1", "llamacpp_slots", None, ("http://h:8080", "/slots", None)),
    ("https://gw.example/llama/v1", "llamacpp", None, ("https://gw.example", "/llama/metrics", "/llama/props")),
    ("http://h:8000/v1", "sglang", "http://metrics-host:9000/m?x=1", ("http://metrics-host:9000", "/m?x=1", None)),
])
def test_where_the_load_page_is(api_base: str | None, source: str, url: str | None,
                                expected: tuple[str, str, str | None]) -> None:
    extra = {"url": url} if url else {}
    dep = Deployment(name="d", type="llamacpp", model="m", api_base=api_base, hosting="self",
                     load_source={"type": source, **extra})
    address = source_address(dep)
    assert (address.origin, address.path, address.props_path) == expected
    assert address.slots_path == (expected[2].replace("/props", "/slots") if expected[2] else None)


@pytest.mark.parametrize("url", ["ftp://h/metrics", "/metrics", "http:///metrics", "metrics-host:9000"])
def test_a_load_source_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError):
        Deployment(name="d", type="vllm", model="m", hosting="self", load_source={"type": "vllm", "url": url})


async def test_replicas_poll_each_server_once_and_share_the_readings() -> None:
    """Two gateway processes' runtimes on one private Redis: after they have seen each other, only the
    owner polls the server, and the other routes on the owner's reading."""
    policy = """
deployments:
  a: {{type: llamacpp, model: m, api_base: "{base}", hosting: self, load_source: {{type: llamacpp, interval_seconds: 0.05}}}}
  b: {{type: vllm, model: m, api_base: "{base}", hosting: self, load_source: {{type: vllm, interval_seconds: 0.05}}}}
models:
  m: {{deployments: [a, b]}}
"""
    with RedisServer() as redis_server:
        async with SimulatorServer(slots=4, ttft_ms=0, tokens_per_second=2, output_tokens=100) as sim:
            replicas = []
            try:
                for _ in range(2):
                    runtime = Runtime()
                    state = StateService.from_settings(redis_server.url, timeout=2)
                    sharing = SharedStatsLoop(runtime, state)
                    runtime.load.owns = sharing.owns
                    runtime.install(parse_policy(policy.format(base=sim.openai_base_url)))
                    replicas.append((runtime, state, sharing))
                for _ in range(2):
                    for _, _, sharing in replicas:
                        await sharing.once()
                owners = {name: [r for r, _, s in replicas if s.owns(name)] for name in ("a", "b")}
                assert all(len(o) == 1 for o in owners.values()), "each server has exactly one poller"

                async with busy(sim, 3):
                    await asyncio.sleep(0.3)  # a few poll intervals
                    for _ in range(2):  # publish, then fetch what the other published
                        for _, _, sharing in replicas:
                            await sharing.once()
                    for runtime, _, _ in replicas:
                        for name in ("a", "b"):
                            estimate = runtime.stats.server_estimate(name)
                            assert estimate is not None and estimate[0].running == 3, (name, estimate)
                for name in ("a", "b"):
                    owner = owners[name][0]
                    other = next(r for r, _, _ in replicas if r is not owner)
                    assert "load" in owner.stats.export()[name]
                    assert "load" not in other.stats.export().get(name, {}), "the other replica did not poll it"
            finally:
                for runtime, state, _ in replicas:
                    await state.aclose()
                    await runtime.aclose()


async def test_a_replica_alone_owns_everything() -> None:
    with RedisServer() as redis_server:
        runtime = Runtime()
        state = StateService.from_settings(redis_server.url, timeout=2)
        try:
            sharing = SharedStatsLoop(runtime, state)
            assert sharing.owns("x")
            await sharing.once()
            assert sharing.owns("x") and sharing.owns("y")
        finally:
            await state.aclose()
            await runtime.aclose()



@contextlib.asynccontextmanager
async def odd_server(handler) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """A loopback HTTP server answering every request with ``handler``; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def test_a_huge_page_is_refused_while_it_arrives(caplog: pytest.LogCaptureFixture) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        line = b"# padding " + b"x" * 1000 + b"\n"
        for _ in range(6000):  # ~6 MB, past the 4 MiB cap
            await resp.write(line)
        return resp

    async with odd_server(huge) as base:
        stats = LiveStats()
        poller = LoadPoller(stats)
        poller.restart({"self": deployment(base, "vllm")})
        poller.stop()
        try:
            assert await poller.poll("self") is None
            assert any("larger than" in r.message for r in caplog.records)
        finally:
            await poller.aclose()


async def test_a_server_that_never_answers_costs_one_timeout() -> None:
    async def stall(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    async with odd_server(stall) as base:
        poller = LoadPoller(LiveStats())
        poller.restart({"self": deployment(base, "sglang")})
        poller.stop()
        try:
            started = time.monotonic()
            assert await poller.poll("self") is None
            assert time.monotonic() - started < 1.5, "the poll is bounded by its interval, not the server"
        finally:
            await poller.aclose()


async def test_serving_slots_hand_over_in_order_and_survive_cancellation() -> None:
    slots = ServingSlots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def job(name: str) -> None:
        async with slots.hold():
            order.append(name)
            await release.wait()

    first = asyncio.create_task(job("a"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(job(n)) for n in ("b", "c", "d")]
    await asyncio.sleep(0.01)
    assert (slots.running, slots.waiting) == (1, 3)
    waiting[0].cancel()  # a client that gives up while queued
    await asyncio.sleep(0.01)
    assert (slots.running, slots.waiting) == (1, 2)
    page = slots.metrics_page().decode()
    assert "llamacpp:requests_deferred 2.0" in page and 'vllm:num_requests_waiting{model_name="simulator"} 2.0' in page
    release.set()
    await asyncio.gather(first, *waiting[1:])
    assert order == ["a", "c", "d"]
    assert (slots.running, slots.waiting) == (0, 0)
