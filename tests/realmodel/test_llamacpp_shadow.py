"""Shadow evaluation against the real model: a simulated vendor answers the clients, the run's llama-server
(SmolLM2-135M) answers every request again in the shadow. Its answers are real text, real tool calls and
grammar-constrained JSON, so the comparison meets what a self-hosted model actually writes; every shadow is
checked against what the server itself counted, and the report against the access log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from tests import servers
from tests.realmodel.llama import LlamaServer
from tests.realmodel.support import SELF_PRICE
from tests.shadow_support import ADMIN, SCHEMA_STR, TOOL_STR, json_format

pytestmark = pytest.mark.slow

VENDOR_PRICE = (2.5, 10.0)
POLICY = """
name: realmodel-shadow
defaults: {{expected_output_tokens: 32}}
deployments:
  vendor:
    type: openai
    model: gpt-4o
    api_base: {vendor}/v1
    api_key: sk-vendor-test
    hosting: vendor
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
    capabilities: [tools, json_schema]
  smollm:
    type: llamacpp
    model: smollm2-135m-instruct
    api_base: {llama}/v1
    hosting: self
    price: {{input_per_mtok: 0.1, output_per_mtok: 0.2}}
    context_window: {slot_context}
    max_output_tokens: 48
    capabilities: [tools, json_schema]
    timeouts: {{first_byte: 90, total: 180}}
models:
  support: {{deployments: [vendor], shadow: {{deployment: smollm, sample: 1}}}}
"""
REQUESTS = 5


@pytest.fixture(scope="module")
def shadowed(llama: LlamaServer, vendor: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("realmodel-shadow")
    policy, log = folder / "policy.yaml", folder / "gateway.log"
    policy.write_text(POLICY.format(llama=llama.url, vendor=vendor, slot_context=llama.slot_context))
    env = {"GATEWAY_ACCESS_LOG": "true", "GATEWAY_ADMIN_KEY": ADMIN}
    with servers.gateway(policy, env=env, log_path=log) as url:
        yield url, log


def report(gateway: str) -> dict[str, Any]:
    resp = httpx.get(f"{gateway}/v1/gateway/shadow", params={"model": "support"},
                     headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in log.read_text(errors="replace").splitlines() if raw.startswith("{")]


def test_the_real_model_answers_in_the_shadow_and_every_shadow_is_accounted(
        shadowed: tuple[str, Path], llama: LlamaServer) -> None:
    gateway, log = shadowed
    client = OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0, timeout=120)
    llama.wait_idle()
    generated_before = llama.metrics()["llamacpp:tokens_predicted_total"]
    started = time.monotonic()
    client.chat.completions.create(model="support", messages=[{"role": "user", "content": "Name three colours."}],
                                   max_tokens=24)
    client.chat.completions.create(model="support", messages=[{"role": "user", "content": "What is the capital of France?"}],
                                   max_tokens=24)
    list(client.chat.completions.create(model="support", messages=[{"role": "user", "content": "Say hello."}],
                                        max_tokens=16, stream=True))
    client.chat.completions.create(model="support", messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                                   tools=[TOOL_STR], max_tokens=48)  # type: ignore[list-item]
    client.chat.completions.create(model="support", messages=[{"role": "user", "content": "Where is the Louvre?"}],
                                   response_format=json_format(SCHEMA_STR), max_tokens=48)  # type: ignore[arg-type]
    answered = time.monotonic() - started
    deadline = time.monotonic() + 240
    pair: dict[str, Any] = {"requests": 0}
    while pair["requests"] < REQUESTS and time.monotonic() < deadline:  # the shadows finish after the answers
        time.sleep(0.5)
        pair = next(iter(report(gateway)["pairs"]), pair)
    llama.wait_idle()
    time.sleep(0.3)  # the access log is written in batches
    assert answered < 60, "the clients were answered by the vendor without waiting for the shadows"

    assert (pair["primary"], pair["shadow"], pair["requests"]) == ("vendor", "smollm", REQUESTS)
    assert pair["compared"] + pair["failed"] == REQUESTS and pair["dropped"] == 0
    shadows = [e for e in lines(log) if e.get("event") == "shadow"]
    assert len(shadows) == REQUESTS
    compared = [e for e in shadows if e["outcome"] == "compared"]
    # Every token the server generated in this test was generated for a shadow, and is accounted.
    generated = llama.metrics()["llamacpp:tokens_predicted_total"] - generated_before
    assert sum(e.get("shadow_completion_tokens", 0) for e in shadows) == generated
    # The report's figures from the per-shadow lines, priced here.
    shadow_cost = sum((e["shadow_prompt_tokens"] * SELF_PRICE[0] + e["shadow_completion_tokens"] * SELF_PRICE[1]) / 1e6
                      for e in compared)
    assert pair["shadow_cost_usd"] == pytest.approx(shadow_cost, abs=2e-8)
    texts = [e["text_similarity"] for e in compared if "text_similarity" in e]
    if texts:
        assert pair["text_similarity_mean"] == pytest.approx(sum(texts) / len(texts), abs=1e-4)
        assert all(0.0 <= t <= 1.0 for t in texts)
    assert pair["tool_call_requests"] == sum("tool_calls_agree" in e for e in compared)
    assert pair["json_requests"] + sum(1 for e in compared if "json_valid_shadow" in e and "json_agree" not in e) \
        == sum("json_valid_shadow" in e for e in compared)
    assert pair["latency_ratio"] is not None and pair["latency_ratio"] > 0
    assert pair["cost_ratio"] is not None and pair["cost_ratio"] < 1, "the self-hosted price is below the vendor's"
