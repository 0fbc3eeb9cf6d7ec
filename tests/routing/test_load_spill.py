"""Load-aware routing end to end on the simulator: a gateway process polls a simulated llama-server's
/metrics (serving slots), and a burst beyond its slots goes to the vendor at once; the metrics show the
server's queue, the spills and the gateway's own estimates. (tests/realmodel/ repeats this against the
real llama-server.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import AsyncOpenAI

from tests import servers

POLICY = """
defaults: {{objective: cost, expected_output_tokens: 100}}
deployments:
  self:
    type: llamacpp
    model: m
    api_base: {own}/v1
    hosting: self
    price: {{gpu_hour_usd: 1, tokens_per_second: 1000}}
    latency_prior: {{ttft_ms: 50, tokens_per_second: 100}}
    {load_source}
  vendor:
    type: openai
    model: v
    api_base: {vendor}/v1
    api_key: k
    hosting: vendor
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
    latency_prior: {{ttft_ms: 100, tokens_per_second: 200}}
models:
  auto: {{deployments: [self, vendor]}}
rules:
  - name: slo
    latency_slo_ms: 1500
"""
LOAD_SOURCE = "load_source: {type: llamacpp, interval_seconds: 0.1}"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[str, str]]:
    # 2 slots, 100 tokens at 100 tokens/s: a second a request, the way a small GPU server is busy.
    with servers.simulator(slots=2, ttft_ms=20, tps=100, output_tokens=100) as own, \
            servers.simulator(ttft_ms=20, tps=1000, output_tokens=100) as vendor:
        yield own, vendor


def start_gateway(tmp_path: Path, own: str, vendor: str, load_aware: bool):  # type: ignore[no-untyped-def]
    policy = tmp_path / ("aware.yaml" if load_aware else "blind.yaml")
    policy.write_text(POLICY.format(own=own, vendor=vendor, load_source=LOAD_SOURCE if load_aware else ""))
    return servers.gateway(policy, env={"GATEWAY_ACCESS_LOG": "false"}, log_path=tmp_path / f"{policy.stem}.log")


async def burst(gateway: str, n: int) -> list[tuple[str, float]]:
    """``n`` streamed requests at once; (deployment, seconds to the first token) for each."""
    client = AsyncOpenAI(base_url=f"{gateway}/v1", api_key="x", max_retries=0, timeout=30)

    async def one(i: int) -> tuple[str, float]:
        started = time.monotonic()
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": f"tell me a long story {i}"}], stream=True)
        ttft = None
        async for _ in raw.parse():
            ttft = ttft or time.monotonic() - started
        return raw.headers["x-gateway-deployment"], ttft or 0.0

    try:
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await client.close()


def metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for_reading(gateway: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        page = httpx.get(f"{gateway}/metrics").text
        if metric(page, "gateway_upstream_server_slots", deployment="self") == 2:
            return
        time.sleep(0.05)
    raise AssertionError("the gateway never published the simulated server's load")


def test_a_burst_beyond_the_slots_goes_to_the_vendor_at_once(upstreams: tuple[str, str], tmp_path: Path) -> None:
    own, vendor = upstreams
    with start_gateway(tmp_path, own, vendor, load_aware=True) as gateway:
        wait_for_reading(gateway)
        results = asyncio.run(burst(gateway, 6))
        served = sorted(d for d, _ in results)
        assert served == ["self", "self", "vendor", "vendor", "vendor", "vendor"], results
        assert max(t for d, t in results if d == "self") < 1.0, "nothing in-house waited for a slot"
        page = httpx.get(f"{gateway}/metrics").text
        assert metric(page, "gateway_load_spills_total", deployment="self") == 4
        assert metric(page, "gateway_upstream_server_requests", deployment="self", state="running") is not None
        assert metric(page, "gateway_upstream_kv_cache_usage_ratio", deployment="self") is not None


def test_without_the_load_source_the_burst_queues_in_house(upstreams: tuple[str, str], tmp_path: Path) -> None:
    own, vendor = upstreams
    with start_gateway(tmp_path, own, vendor, load_aware=False) as gateway:
        results = asyncio.run(burst(gateway, 6))
        assert [d for d, _ in results] == ["self"] * 6
        ttfts = sorted(t for _, t in results)
        assert ttfts[-1] > 1.5, f"the last pair waited for two others ahead of it: {ttfts}"
        page = httpx.get(f"{gateway}/metrics").text
        assert metric(page, "gateway_load_spills_total", deployment="self") is None
