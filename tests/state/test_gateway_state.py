"""The gateway with shared state in a real Redis: cache correctness and isolation, rate limits and
spend across two gateway processes, budgets, and Redis killed and restarted under traffic."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests import servers
from tests.conftest import POLICIES
from tests.redis_support import RedisServer

SECRETS = {"ALPHA": "sk-alpha", "BETA": "sk-beta", "LIMITED": "sk-limited", "FRUGAL": "sk-frugal", "ADMIN": "sk-admin"}
ENV = {f"{name}_SHA": hashlib.sha256(secret.encode()).hexdigest() for name, secret in SECRETS.items()}
MSG = [{"role": "user", "content": "What is the boiling point of water?"}]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A redis-server of this module's own, on a free port: never a Redis the test did not start."""
    with RedisServer() as server:
        yield server.url


@pytest.fixture(scope="module")
def two_gateways(redis_url: str, tmp_path_factory: pytest.TempPathFactory):
    logs = tmp_path_factory.mktemp("state")
    env = {**ENV, "GATEWAY_REDIS_URL": redis_url}
    with servers.gateway(POLICIES / "state.yaml", env=env, log_path=logs / "a.log") as a, \
            servers.gateway(POLICIES / "state.yaml", env=env, log_path=logs / "b.log") as b:
        yield a, b


def client(url: str, who: str = "ALPHA", **headers: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key=SECRETS[who], max_retries=0, default_headers=headers or None)


def chat(url: str, who: str = "ALPHA", headers: dict | None = None, **body):
    return client(url, who, **(headers or {})).chat.completions.with_raw_response.create(
        **{"model": "self-only", "messages": MSG, "temperature": 0, **body})


def test_non_stream_miss_then_hit_on_the_other_replica(two_gateways) -> None:
    a, b = two_gateways
    first = chat(a, seed=1)
    assert first.headers["x-gateway-cache"] == "miss"
    time.sleep(0.2)  # the fill happens after the response
    second = chat(b, seed=1)
    assert second.headers["x-gateway-cache"] == "hit"
    assert second.headers["x-gateway-deployment"] == "self-a"
    assert json.loads(second.text) == json.loads(first.text)


def test_stream_served_from_a_non_stream_entry_and_back(two_gateways) -> None:
    a, b = two_gateways
    fresh = chat(a, seed=2, tools=[{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}])
    time.sleep(0.2)
    stream = client(b).chat.completions.create(model="self-only", messages=MSG, temperature=0, seed=2, stream=True,
                                               stream_options={"include_usage": True},
                                               tools=[{"type": "function", "function": {"name": "lookup", "parameters": {
                                                   "type": "object", "properties": {"q": {"type": "string"}},
                                                   "required": ["q"]}}}])
    chunks = list(stream)
    assert len(chunks) >= 3 and chunks[-1].usage is not None
    original = fresh.parse().choices[0].message.tool_calls[0]
    args = "".join(c.choices[0].delta.tool_calls[0].function.arguments or "" for c in chunks
                   if c.choices and c.choices[0].delta.tool_calls)
    assert args == original.function.arguments
    # A stream fills the cache too; a non-stream request then gets the stream's answer.
    streamed = "".join(c.choices[0].delta.content or "" for c in client(a).chat.completions.create(
        model="self-only", messages=MSG, temperature=0, seed=3, n=2, stream=True) if c.choices and c.choices[0].index == 0)
    time.sleep(0.2)
    hit = chat(b, seed=3, n=2)
    assert hit.headers["x-gateway-cache"] == "hit"
    assert len(hit.parse().choices) == 2 and hit.parse().choices[0].message.content == streamed


def test_cache_headers_and_nondeterministic_requests(two_gateways) -> None:
    a, _ = two_gateways
    chat(a, seed=4)
    time.sleep(0.2)
    assert chat(a, seed=4, headers={"cache-control": "no-cache"}).headers["x-gateway-cache"] == "bypass"
    assert chat(a, seed=4, headers={"x-gateway-cache": "bypass"}).headers["x-gateway-cache"] == "bypass"
    assert chat(a, seed=4).headers["x-gateway-cache"] == "hit"
    # temperature 0.7 and no seed: not deterministic, never cached
    resp = client(a).chat.completions.with_raw_response.create(model="self-only", messages=MSG, temperature=0.7)
    assert resp.headers["x-gateway-cache"] == "bypass"


def test_tenants_and_data_classes_are_isolated(two_gateways) -> None:
    a, b = two_gateways
    chat(a, "ALPHA", seed=5)
    time.sleep(0.2)
    assert chat(b, "BETA", seed=5).headers["x-gateway-cache"] == "miss", "another team must not see alpha's entry"
    assert chat(b, "ALPHA", seed=5, headers={"x-data-class": "confidential"}).headers["x-gateway-cache"] == "miss"


def test_restricted_request_never_gets_a_vendor_entry(two_gateways) -> None:
    a, b = two_gateways
    vendor = chat(a, model="vendor-first", seed=6)
    assert vendor.headers["x-gateway-deployment"] == "vendor"
    time.sleep(0.2)
    restricted = chat(b, model="vendor-first", seed=6, headers={"x-data-class": "restricted"})
    assert restricted.headers["x-gateway-deployment"] == "self-a"
    assert restricted.headers["x-gateway-cache"] == "miss"


def test_errors_are_never_cached(two_gateways) -> None:
    a, _ = two_gateways
    for _ in range(2):
        resp = httpx.post(f"{a}/v1/chat/completions", headers={"authorization": "Bearer sk-alpha"},
                          json={"model": "broken", "messages": MSG, "temperature": 0})
        assert resp.status_code == 502 and resp.headers["x-gateway-cache"] == "miss"


def test_rate_limit_holds_across_two_gateways(two_gateways) -> None:
    a, b = two_gateways
    def one(i: int) -> httpx.Response:
        return httpx.post(f"{(a, b)[i % 2]}/v1/chat/completions", headers={"authorization": "Bearer sk-limited"},
                          json={"model": "self-only", "messages": MSG}, timeout=30)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(60)))
    ok = [r for r in results if r.status_code == 200]
    limited = [r for r in results if r.status_code == 429]
    assert len(ok) == 20 and len(limited) == 40, "over-admitted under concurrency"
    assert limited[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert limited[0].headers["x-ratelimit-remaining-requests"] == "0"
    assert "retry-after" in limited[0].headers
    assert ok[0].headers["x-ratelimit-limit-requests"] == "20"


def test_spend_counted_exactly_once_across_replicas(two_gateways) -> None:
    a, b = two_gateways
    admin = {"authorization": "Bearer sk-admin"}
    time.sleep(0.5)
    before = httpx.get(f"{a}/v1/gateway/spend", headers=admin).json()["team"].get("beta", 0.0)
    expected = 0.0
    for i in range(40):
        resp = httpx.post(f"{(a, b)[i % 2]}/v1/chat/completions", headers={"authorization": "Bearer sk-beta"},
                          json={"model": "vendor-first", "messages": [{"role": "user", "content": f"spend {i}"}]})
        usage = resp.json()["usage"]
        expected += (usage["prompt_tokens"] * 2.5 + usage["completion_tokens"] * 10) / 1e6
    time.sleep(1.0)  # spend is written off the request path
    report = httpx.get(f"{a}/v1/gateway/spend", headers=admin).json()
    assert report["team"]["beta"] - before == pytest.approx(expected, abs=1e-9), "spend drift"
    assert report["deployment"]["vendor"] >= expected - 1e-9
    assert httpx.get(f"{a}/v1/gateway/spend", headers={"authorization": "Bearer sk-beta"}).status_code == 403


def test_budget_exhausted_gets_429(two_gateways) -> None:
    a, _ = two_gateways
    statuses = []
    for i in range(30):
        resp = httpx.post(f"{a}/v1/chat/completions", headers={"authorization": "Bearer sk-frugal"},
                          json={"model": "vendor-first", "messages": [{"role": "user", "content": f"budget {i}"}]})
        statuses.append(resp.status_code)
        if resp.status_code == 429:
            assert resp.json()["error"]["type"] == "insufficient_quota"
            break
        time.sleep(0.15)  # let the spend land before the next budget read
    assert statuses[-1] == 429 and statuses[0] == 200


def test_redis_killed_and_restarted_under_traffic(tmp_path: Path) -> None:
    port = servers.free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        env = {**ENV, "GATEWAY_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
        with servers.gateway(POLICIES / "state.yaml", env=env, log_path=tmp_path / "gw.log") as url:
            assert chat(url, seed=7).status_code == 200
            redis.kill()
            redis.wait()
            statuses = [chat(url, seed=7).status_code for _ in range(20)]
            assert set(statuses) == {200}, "the gateway keeps serving without Redis"
            ready = httpx.get(f"{url}/readyz")
            assert ready.status_code == 200 and "degraded" in ready.json()["checks"]["redis"]
            assert "gateway_redis_up 0.0" in httpx.get(f"{url}/metrics").text
            redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                chat(url, seed=8)
                if httpx.get(f"{url}/readyz").json()["checks"]["redis"] == "ok":
                    break
                time.sleep(0.2)
            assert httpx.get(f"{url}/readyz").json()["checks"]["redis"] == "ok", "recovered by itself"
            chat(url, seed=9)
            time.sleep(0.3)
            assert chat(url, seed=9).headers["x-gateway-cache"] == "hit", "cache works again"
            assert "gateway_redis_up 1.0" in httpx.get(f"{url}/metrics").text
    finally:
        redis.kill()
        redis.wait()
