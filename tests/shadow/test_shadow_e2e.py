"""Shadow evaluation end to end: two gateway processes sharing a real Redis, the openai and anthropic SDKs as
clients, the HTTP simulator as the vendor and the self-hosted model, a recording upstream as a second vendor.

A mix of traffic (text, streams, tools, JSON schema, Messages, Responses, confidential requests) goes through
a policy that shadows the vendor with the self-hosted deployment. Then: the report of ``GET
/v1/gateway/shadow`` — summed across both replicas — matches figures worked out here by hand from the
policy's prices and the replicas' own access logs; every shadow is accounted; no confidential request
reached a vendor; ``gateway policy simulate`` shows the observed agreement next to the projected saving of
moving the traffic."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests import servers
from tests.recording_upstream import RecordingUpstream
from tests.redis_support import RedisServer
from tests.shadow_support import ADMIN, SCHEMA_NUM, SCHEMA_STR, TOOL_INT, TOOL_STR, json_format

PRICES = {"vendor": (2.5, 10.0), "qwen-self": (0.2, 0.4)}
SECRET = "4111 1111 1111 1111"  # a payment card: detected, the request becomes confidential
POLICY = """
name: shadow-e2e
reference_model: vendor
deployments:
  vendor:
    type: openai
    model: gpt-4o
    api_base: {sim}/v1
    api_key: sk-test
    hosting: vendor
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
    capabilities: [tools, json_schema, json_mode]
    endpoints: [chat, completions, messages, responses]
  qwen-self:
    type: vllm
    model: qwen2.5-7b-instruct
    api_base: {sim}/v1
    headers: {{x-sim-variant: "1"}}   # another model: every number it writes is one higher
    hosting: self
    price: {{input_per_mtok: 0.2, output_per_mtok: 0.4}}
    capabilities: [tools, json_schema, json_mode]
  vendor-mini:
    type: openai_compatible
    model: upstream-model
    api_base: {recorder}
    hosting: vendor
    price: {{input_per_mtok: 0.15, output_per_mtok: 0.6}}
models:
  support: {{deployments: [vendor], shadow: {{deployment: qwen-self, sample: 1}}}}
  internal: {{deployments: [qwen-self], shadow: {{deployment: vendor-mini, sample: 1}}}}
rules:
  - name: confidential-stays-home
    when: {{data_class_at_least: confidential}}
    require: {{hosting: self}}
"""


@dataclass
class Stack:
    replicas: list[str]
    logs: list[Path]
    recorder: RecordingUpstream
    policy: Path
    workdir: Path

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for log in self.logs:
            for raw in log.read_text().splitlines():
                if raw.startswith("{"):
                    with contextlib.suppress(ValueError):
                        out.append(json.loads(raw))
        return out

    def report(self, **params: str) -> dict[str, Any]:
        resp = httpx.get(f"{self.replicas[0]}/v1/gateway/shadow", params=params,
                         headers={"authorization": f"Bearer {ADMIN}"}, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("shadow-e2e")
    with contextlib.ExitStack() as es:
        url = es.enter_context(RedisServer()).url  # the replicas' own: nothing else writes there
        sim = es.enter_context(servers.simulator(ttft_ms=5, output_tokens=16))
        recorder = es.enter_context(RecordingUpstream())
        policy = workdir / "policy.yaml"
        policy.write_text(POLICY.format(sim=sim, recorder=recorder.api_base))
        env = {"GATEWAY_ACCESS_LOG": "true", "GATEWAY_ADMIN_KEY": ADMIN, "GATEWAY_REDIS_URL": url,
               "GATEWAY_POLICY_RELOAD": "false"}
        logs = [workdir / "replica-a.log", workdir / "replica-b.log"]
        replicas = [es.enter_context(servers.gateway(policy, env=env, log_path=log)) for log in logs]
        yield Stack(replicas, logs, recorder, policy, workdir)


def drive(stack: Stack) -> None:
    """Ten requests for `support` and four for `internal`, spread over both replicas."""
    a, b = (openai.OpenAI(base_url=f"{r}/v1", api_key="unused", max_retries=0, timeout=30) for r in stack.replicas)
    ask = [{"role": "user", "content": "Which colour is the sky?"}]
    a.chat.completions.create(model="support", messages=ask)
    b.chat.completions.create(model="support", messages=[{"role": "user", "content": "Name a river."}])
    list(a.chat.completions.create(model="support", messages=ask, stream=True))
    a.chat.completions.create(model="support", messages=[{"role": "user", "content": "Add 2 and 3."}], tools=[TOOL_INT])
    b.chat.completions.create(model="support", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[TOOL_STR])
    a.chat.completions.create(model="support", messages=[{"role": "user", "content": "Weather in Rome?"}], tools=[TOOL_STR])
    b.chat.completions.create(model="support", messages=[{"role": "user", "content": "Rate it."}],
                              response_format=json_format(SCHEMA_NUM))  # type: ignore[arg-type]
    a.chat.completions.create(model="support", messages=[{"role": "user", "content": "Where is the Prado?"}],
                              response_format=json_format(SCHEMA_STR))  # type: ignore[arg-type]
    messages = anthropic.Anthropic(base_url=stack.replicas[1], api_key="unused", max_retries=0)
    messages.messages.create(model="support", max_tokens=64, messages=[{"role": "user", "content": "Hello, Messages."}])
    a.responses.create(model="support", input="Hello, Responses.")
    # internal: self-hosted, shadowed by a cheaper vendor — except what must stay home.
    a.chat.completions.create(model="internal", messages=[{"role": "user", "content": "Public question."}])
    b.chat.completions.create(model="internal", messages=[{"role": "user", "content": f"Charge card {SECRET}."}])
    a.chat.completions.create(model="internal", messages=[{"role": "user", "content": "Internal memo."}],
                              extra_headers={"x-data-class": "confidential"})
    b.chat.completions.create(model="internal", messages=[{"role": "user", "content": "Another public one."}])


@pytest.fixture(scope="module")
def driven(stack: Stack) -> Stack:
    drive(stack)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # shadows finish after their clients were answered
        pairs = {p["model"]: p for p in stack.report()["pairs"]}
        if pairs.get("support", {}).get("requests") == 10 and pairs.get("internal", {}).get("requests") == 4:
            break
        time.sleep(0.2)
    time.sleep(0.3)  # the access log is written in batches
    return stack


def cost(dep: str, prompt: int, completion: int) -> float:
    price_in, price_out = PRICES[dep]
    return (prompt * price_in + completion * price_out) / 1e6


def test_the_report_adds_both_replicas_and_matches_figures_worked_out_by_hand(driven: Stack) -> None:
    pairs = {p["model"]: p for p in driven.report()["pairs"]}
    p = pairs["support"]
    assert (p["primary"], p["shadow"], p["requests"], p["compared"], p["failed"], p["dropped"]) == \
        ("vendor", "qwen-self", 10, 10, 0, 0)
    # Tools: the string-argument calls agree (2), the integer one is one higher on the shadow (1).
    assert (p["tool_call_requests"], p["tool_call_agreement"]) == (3, round(2 / 3, 4))
    # JSON: the strings-only schema agrees; the bounded integer is 2 on the shadow, above its maximum of 1.
    assert (p["json_requests"], p["json_agreement"], p["json_valid_primary"], p["json_valid_shadow"]) == (2, 0.5, 1.0, 0.5)
    lines = driven.lines()
    shadows = [e for e in lines if e.get("event") == "shadow" and e["model"] == "support"]
    requests = {e["request_id"]: e for e in lines if e.get("event") != "shadow" and e.get("model") == "support"}
    assert len(shadows) == 10 and {e["request_id"] for e in shadows} == set(requests)
    assert all(e.get("shadow") == "qwen-self" for e in requests.values()), "each request line names its shadow"
    texts = [e["text_similarity"] for e in shadows if "text_similarity" in e]
    assert len(texts) == p["text_requests"] == 5
    assert p["text_similarity_mean"] == pytest.approx(sum(texts) / 5, abs=1e-4)
    # Cost: priced here from the tokens each side reported (primary: its request line; shadow: its line).
    primary = sum(cost("vendor", requests[e["request_id"]]["prompt_tokens"], requests[e["request_id"]]["completion_tokens"])
                  for e in shadows)
    shadow = sum(cost("qwen-self", e["shadow_prompt_tokens"], e["shadow_completion_tokens"]) for e in shadows)
    assert p["primary_cost_usd"] == pytest.approx(primary, abs=2e-8)
    assert p["shadow_cost_usd"] == pytest.approx(shadow, abs=2e-8)
    assert p["cost_ratio"] == round(shadow / primary, 4)
    latency = sum(e["shadow_ms"] for e in shadows) / sum(e["primary_ms"] for e in shadows)
    assert p["latency_ratio"] == pytest.approx(latency, abs=2e-3)
    assert driven.report()["spend_usd"]["qwen-self"] == pytest.approx(shadow, abs=2e-8)


def test_no_confidential_request_reached_a_vendor(driven: Stack) -> None:
    p = {x["model"]: x for x in driven.report()["pairs"]}["internal"]
    assert (p["requests"], p["compared"], p["drops"]) == (4, 2, {"rule_requirement": 2})
    bodies = [r.body for r in driven.recorder.requests]
    assert len(bodies) == 2, "the two public requests were shadowed to the vendor, nothing else"
    assert not any(SECRET.encode() in body or b"Internal memo" in body for body in bodies)


def test_spend_keeps_shadows_apart_from_teams(driven: Stack) -> None:
    spend = httpx.get(f"{driven.replicas[1]}/v1/gateway/spend", headers={"authorization": f"Bearer {ADMIN}"}).json()
    assert set(spend["deployment"]) <= {"vendor", "qwen-self"}
    assert spend["shadow"]["qwen-self"] > 0 and spend["shadow"]["vendor-mini"] > 0
    assert "vendor-mini" not in spend["deployment"], "a shadow is never a team's spend"


def test_metrics_of_each_replica_count_its_own_shadows(driven: Stack) -> None:
    total = 0.0
    for replica in driven.replicas:
        for line in httpx.get(f"{replica}/metrics").text.splitlines():
            if line.startswith('gateway_shadow_requests_total{model="support"'):
                total += float(line.rsplit(" ", 1)[1])
    assert total == 10


def test_simulate_shows_observed_agreement_next_to_the_saving(driven: Stack) -> None:
    evidence = driven.workdir / "shadow.json"
    evidence.write_text(json.dumps(driven.report()))
    traffic = driven.workdir / "traffic.log"
    traffic.write_text("\n".join(json.dumps(e) for e in driven.lines()) + "\n")
    candidate = driven.workdir / "candidate.yaml"
    candidate.write_text(driven.policy.read_text().replace("support: {deployments: [vendor]", "support: {deployments: [qwen-self]"))
    args = [sys.executable, "-m", "gateway", "policy", "simulate", str(candidate), "--traffic", str(traffic),
            "--shadow", str(evidence)]
    text = subprocess.run(args, capture_output=True, text=True, cwd=servers.ROOT, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "Observed agreement on the changed routes" in text.stdout
    evidence_section = text.stdout.split("Observed agreement on the changed routes")[1]
    row = next(line for line in evidence_section.splitlines() if line.startswith("  support "))
    cells = row.split()
    assert cells[:4] == ["support", "vendor", "→", "qwen-self"] and cells[4] == "10", row  # requests moved
    assert cells[6:9] == ["10", "0.67", "0.50"], row  # compared, tool-call and JSON agreement
    doc = json.loads(subprocess.run([*args, "--json"], capture_output=True, text=True, cwd=servers.ROOT, timeout=60).stdout)
    change = next(c for c in doc["changes"] if c["model"] == "support")
    assert (change["from"], change["to"], change["requests"]) == ("vendor", "qwen-self", 10)
    assert change["savings_vs_current_ratio"] > 0.9, "the self-hosted price is a small fraction of the vendor's"
    assert change["shadow"]["tool_call_agreement"] == round(2 / 3, 4)
    assert "event" not in json.dumps(doc["skipped"]), "shadow lines are evidence, not traffic to replay"
