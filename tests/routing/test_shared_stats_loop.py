"""Two replicas sharing live statistics and breaker states through the real Redis route alike."""

from __future__ import annotations

import uuid

from gateway.core.types import BreakerState
from gateway.policy.loader import parse_policy
from gateway.routing.runtime import Runtime
from gateway.routing.sharing import SharedStatsLoop
from gateway.state import StateService
from tests.state_support import redis_url, require_redis

POLICY = parse_policy("""
deployments:
  a: {type: vllm, model: m, api_base: "http://127.0.0.1:1/v1", hosting: self}
  b: {type: vllm, model: m, api_base: "http://127.0.0.1:1/v1", hosting: self}
models:
  m: {deployments: [a, b]}
""")


async def test_replicas_merge_latencies_and_open_breakers() -> None:
    require_redis()
    prefix = f"gw:test:{uuid.uuid4().hex}:"
    replicas = []
    try:
        for _ in range(2):
            runtime = Runtime()
            runtime.install(POLICY)
            state = StateService.from_settings(redis_url(), timeout=5, prefix=prefix)
            replicas.append((runtime, state, SharedStatsLoop(runtime, state)))
        (one, _, loop_one), (two, _, loop_two) = replicas
        for _ in range(5):
            one.stats.record_success("a", latency_ms=1000, ttft_ms=400, output_tokens=100)
            two.stats.record_success("a", latency_ms=200, ttft_ms=100, output_tokens=100)
        for _ in range(5):
            one.breakers["b"].record_failure()  # replica one alone sees b failing
        two.breakers["b"].record_failure()
        await loop_one.once()
        await loop_two.once()
        await loop_one.once()
        view_one = one.stats.snapshot(now=1e9)["a"]
        view_two = two.stats.snapshot(now=1e9)["a"]
        assert view_one.ttft_ms == view_two.ttft_ms == 250, "both replicas see the samples-weighted mean"
        assert one.breakers["b"].state is BreakerState.OPEN
        assert not one.stats.snapshot(now=2e9)["b"].healthy
        assert two.stats.snapshot(now=2e9)["b"].healthy, "one replica of two is not a majority"
    finally:
        for runtime, state, _ in replicas:
            await state.aclose()
            await runtime.aclose()
