"""The real-model tier: the run's llama-server (``llama``, tests/conftest.py), a simulated vendor next to
it, and a gateway process in front of both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers
from tests.realmodel.llama import LlamaServer

POLICY = """
name: realmodel
reference_model: vendor
defaults: {{objective: cost, expected_output_tokens: 32}}
deployments:
  smollm:
    type: llamacpp
    model: smollm2-135m-instruct
    api_base: {llama}/v1
    hosting: self
    price: {{input_per_mtok: 0.1, output_per_mtok: 0.2}}
    context_window: {slot_context}
    capabilities: [tools]
    latency_prior: {{ttft_ms: 300, tokens_per_second: 30}}
    load_source: {{type: llamacpp, interval_seconds: 0.25}}
    timeouts: {{first_byte: 90, total: 180}}
    retry: {{attempts: 1}}
  smollm-claims-8k:      # the same server, described with a window its slots do not have
    type: llamacpp
    model: smollm2-135m-instruct
    api_base: {llama}/v1
    hosting: self
    price: {{input_per_mtok: 0.1, output_per_mtok: 0.2}}
    context_window: 8192
    timeouts: {{first_byte: 90, total: 180}}
    retry: {{attempts: 1}}
  vendor:
    type: openai
    model: gpt-4o
    api_base: {vendor}/v1
    api_key: sk-vendor-test
    hosting: vendor
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
    context_window: 128000
    capabilities: [tools, json_schema]
models:
  auto: {{deployments: [smollm, vendor]}}
  smollm: {{deployments: [smollm]}}
  smollm-8k: {{deployments: [smollm-claims-8k]}}
  long-context: {{deployments: [smollm-claims-8k, vendor], objective: order}}
  cached: {{deployments: [smollm]}}
rules:
  - name: replay
    when: {{model: [cached]}}
    cache: {{enabled: true, ttl_seconds: 600}}
"""


@pytest.fixture(scope="session")
def vendor() -> Iterator[str]:
    with servers.simulator(ttft_ms=20, output_tokens=24) as url:
        yield url


@pytest.fixture(scope="session")
def gateway_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("realmodel") / "gateway.log"


@pytest.fixture(scope="session")
def gateway(llama: LlamaServer, vendor: str, gateway_log: Path) -> Iterator[str]:
    policy = gateway_log.parent / "policy.yaml"
    policy.write_text(POLICY.format(llama=llama.url, vendor=vendor, slot_context=llama.slot_context))
    with servers.gateway(policy, env={"GATEWAY_ACCESS_LOG": "true"}, log_path=gateway_log) as url:
        yield url
