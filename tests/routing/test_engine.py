"""Table tests for the pure routing engine: every branch, no I/O."""

from __future__ import annotations

import pytest

from gateway.core.errors import ModelNotFound, PermissionDenied
from gateway.core.types import Endpoint, RequestFacts
from gateway.policy.loader import parse_policy
from gateway.routing.engine import decide
from gateway.routing.stats import DeploymentStats

POLICY = parse_policy("""
name: engine-test
reference_model: gpt
defaults: {objective: cost, expected_output_tokens: 100, max_fallbacks: 3}
deployments:
  qwen:   {type: vllm, model: q, api_base: "http://127.0.0.1:1/v1", hosting: self, origin: CN, region: on-prem,
           price: {input_per_mtok: 0.1, output_per_mtok: 0.2}, context_window: 32000, capabilities: [tools, json_schema],
           latency_prior: {ttft_ms: 800, tokens_per_second: 30}}
  llama:  {type: vllm, model: l, api_base: "http://127.0.0.1:1/v1", hosting: self, origin: US, region: on-prem,
           price: {input_per_mtok: 0.3, output_per_mtok: 0.3}, context_window: 8000, capabilities: [tools],
           latency_prior: {ttft_ms: 200, tokens_per_second: 60}}
  gpt:    {type: openai, model: gpt-4o, hosting: vendor, origin: US, region: us-east,
           price: {input_per_mtok: 2.5, output_per_mtok: 10}, context_window: 128000,
           capabilities: [tools, vision, json_schema, json_mode], latency_prior: {ttft_ms: 300, tokens_per_second: 80}}
  claude: {type: anthropic, model: claude, hosting: vendor, origin: US, region: us-west,
           price: {input_per_mtok: 3, output_per_mtok: 15}, context_window: 200000, capabilities: [tools, vision],
           latency_prior: {ttft_ms: 250, tokens_per_second: 70}}
  embed:  {type: vllm, model: e, api_base: "http://127.0.0.1:1/v1", hosting: self, endpoints: [embeddings]}
models:
  auto:   {deployments: [qwen, llama, gpt, claude]}
  fast:   {deployments: [qwen, llama, gpt, claude], objective: latency}
  listed: {deployments: [gpt, qwen, llama], objective: order}
  blend:  {deployments: [qwen, gpt], objective: {cost: 0.5, latency: 0.5}}
  emb:    {deployments: [embed]}
  premium: {deployments: [gpt, claude]}
teams:
  gov: {models: [auto, premium]}
  research: {}
rules:
  - name: restricted-self
    when: {data_class: [restricted]}
    require: {hosting: self}
  - name: gov-no-cn
    when: {team: [gov]}
    require: {origin: {not_in: [CN]}}
  - name: night-deny
    when: {all: [{team: [research]}, {hours_utc: {from: 2, to: 4}}]}
    deny: maintenance window
  - name: slo-header
    when: {headers: {x-priority: [interactive]}}
    latency_slo_ms: 3000
  - name: budget-cap
    when: {metadata: {tier: [free]}}
    max_price_usd: 0.0001
  - name: spill
    when: {any: [{metadata: {spill: ["yes"]}}, {not: {stream: false}}]}
    fallback_outside_required: true
""").policy


def facts(**kw) -> RequestFacts:
    base = dict(endpoint=Endpoint.CHAT, model="auto", prompt_tokens=1000, hour_utc=12)
    base.update(kw)
    return RequestFacts(**base)


def targets(f: RequestFacts, stats=None) -> list[str]:
    return [t.deployment for t in decide(f, POLICY, stats or {}).targets]


@pytest.mark.parametrize("f, expected", [
    (facts(), ["qwen", "llama", "gpt", "claude"]),  # cost: cheapest first
    (facts(model="fast"), ["gpt", "claude", "llama", "qwen"]),  # latency priors: 1550, 1679, 1867, 4133 ms
    (facts(model="listed"), ["gpt", "qwen", "llama"]),  # order as listed
    (facts(model="premium"), ["gpt", "claude"]),
    (facts(features=frozenset({"vision"})), ["gpt", "claude"]),  # capability filter
    (facts(features=frozenset({"json_schema"})), ["qwen", "gpt"]),
    (facts(features=frozenset({"json_mode"})), ["qwen", "gpt"]),  # json_schema implies json mode
    (facts(prompt_tokens=20000), ["qwen", "gpt", "claude"]),  # llama's 8k window too small
    (facts(prompt_tokens=180000), ["claude"]),  # even 25% fewer tokens would not fit gpt's 128k
    # Near a window the estimate is not trusted to drop a deployment (defaults.token_estimate_margin 0.25):
    (facts(prompt_tokens=150000), ["gpt", "claude"]),  # might be 112k tokens: gpt keeps its place
    (facts(prompt_tokens=40000), ["qwen", "gpt", "claude"]),  # might be 30k: the self-hosted 32k qwen is tried
    (facts(prompt_tokens=44000), ["gpt", "claude"]),  # at least 33k: qwen's 32k cannot take it
    (facts(prompt_tokens=40000, max_output_tokens=4000), ["gpt", "claude"]),  # 30k + 4k output exceeds 32k
    (facts(data_class="restricted"), ["qwen", "llama"]),  # rule requirement
    (facts(data_class="restricted", features=frozenset({"vision"})), []),
    (facts(team="gov"), ["llama", "gpt", "claude"]),  # origin not CN
    (facts(team="gov", data_class="restricted"), ["llama"]),  # requirements add up
    (facts(headers={"x-priority": "interactive"}), ["llama", "gpt", "claude", "qwen"]),  # SLO, see below
    (facts(model="emb", endpoint=Endpoint.EMBEDDINGS), ["embed"]),
    (facts(model="emb"), []),  # chat on an embedding-only deployment
    (facts(metadata={"tier": "free"}), []),  # max price $0.0001: even qwen costs $0.00012
    (facts(metadata={"tier": "free"}, prompt_tokens=500), ["qwen"]),  # qwen $0.00007 fits, llama $0.00018 does not
])
def test_ranking_and_filters(f, expected):
    assert targets(f) == expected


def test_latency_slo_puts_cheapest_meeting_slo_first():
    # Expected latency (ttft + 100 tokens): qwen 800+3333=4133, llama 200+1667=1867, gpt 300+1250=1550, claude 250+1429=1679
    got = targets(facts(headers={"x-priority": "interactive"}, max_output_tokens=100))
    assert got == ["llama", "gpt", "claude", "qwen"]  # llama cheapest of those under 3 s; qwen misses the SLO


def test_live_stats_override_priors():
    stats = {"qwen": DeploymentStats(ttft_ms=50, tokens_per_second=500, samples=10)}
    assert targets(facts(model="fast"), stats)[0] == "qwen"


def test_unhealthy_is_dropped_with_reason():
    d = decide(facts(), POLICY, {"qwen": DeploymentStats(healthy=False)})
    assert [t.deployment for t in d.targets] == ["llama", "gpt", "claude"]
    assert ("qwen", "unhealthy") in [(x.deployment, x.reason) for x in d.dropped]


def test_dropped_reasons_are_reported():
    d = decide(facts(data_class="restricted", prompt_tokens=20000), POLICY, {})
    reasons = {x.deployment: x.reason for x in d.dropped}
    assert reasons == {"llama": "context_too_small", "gpt": "rule_requirement", "claude": "rule_requirement"}
    assert d.rule == "restricted-self" and d.rules_fired == ("restricted-self",)
    assert d.required == {"hosting": "self"}


def test_deny_rule():
    d = decide(facts(team="research", hour_utc=3), POLICY, {})
    assert d.denied == "maintenance window" and d.targets == () and d.rule == "night-deny"
    assert decide(facts(team="research", hour_utc=5), POLICY, {}).denied is None


def test_fallback_outside_required_only_when_allowed():
    # streaming requests match the `spill` rule (not stream == false), which allows leaving the required set
    d = decide(facts(data_class="restricted", stream=True), POLICY, {})
    assert [t.deployment for t in d.targets] == ["qwen", "llama", "gpt", "claude"]
    d = decide(facts(data_class="restricted"), POLICY, {})
    assert [t.deployment for t in d.targets] == ["qwen", "llama"]


def test_weighted_blend_is_between_pure_objectives():
    d = decide(facts(model="blend"), POLICY, {})
    assert d.objective == "cost:0.5+latency:0.5"
    assert [t.deployment for t in d.targets] == ["qwen", "gpt"]  # qwen far cheaper, only ~2.7x slower
    stats = {"qwen": DeploymentStats(ttft_ms=100000, tokens_per_second=5)}  # ~80x slower, 29x cheaper
    assert [t.deployment for t in decide(facts(model="blend"), POLICY, stats).targets] == ["gpt", "qwen"]


def test_unknown_model_and_team_restriction():
    with pytest.raises(ModelNotFound):
        decide(facts(model="nope"), POLICY, {})
    with pytest.raises(PermissionDenied):
        decide(facts(team="gov", model="fast"), POLICY, {})


def test_max_fallbacks_bounds_targets():
    few = POLICY.model_copy(update={"defaults": POLICY.defaults.model_copy(update={"max_fallbacks": 1})})
    assert [t.deployment for t in decide(facts(), few, {}).targets] == ["qwen", "llama"]


def test_deterministic():
    f = facts(features=frozenset({"tools"}))
    assert decide(f, POLICY, {}, decision_id="a") == decide(f, POLICY, {}, decision_id="a")


def test_estimated_cost_in_targets():
    d = decide(facts(), POLICY, {})
    assert d.targets[0].estimated_cost_usd == pytest.approx((1000 * 0.1 + 100 * 0.2) / 1e6)


def test_budget_pacing_forces_cost_objective():
    assert targets(facts(model="fast", budget_pacing=True)) == ["qwen", "llama", "gpt", "claude"]
