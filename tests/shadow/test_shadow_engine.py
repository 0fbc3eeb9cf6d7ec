"""The engine's shadow plan: sampled by a hash of the request id, held to the request's hard requirements
and the shadow deployment's technical fit, rule over model, shown by explain. Pure: no I/O."""

from __future__ import annotations

import pytest

from gateway.core.types import Endpoint, RequestFacts
from gateway.policy.loader import parse_policy
from gateway.routing.engine import decide, in_sample
from gateway.routing.golden import explain_case

POLICY = parse_policy("""
name: shadow-engine
deployments:
  vendor:    {type: openai, model: gpt-4o, hosting: vendor, price: {input_per_mtok: 2.5, output_per_mtok: 10},
              capabilities: [tools, json_schema, vision], context_window: 128000, endpoints: [chat, embeddings]}
  qwen-self: {type: vllm, model: q, api_base: "http://127.0.0.1:8000/v1", hosting: self, origin: CN,
              capabilities: [tools], context_window: 8000, endpoints: [chat, embeddings]}
  other-vendor: {type: openai, model: gpt-4o-mini, hosting: vendor, price: {input_per_mtok: 1, output_per_mtok: 1},
                 capabilities: [tools, json_schema, vision], context_window: 128000}
models:
  support: {deployments: [vendor], shadow: {deployment: qwen-self, sample: 1}}
  sampled: {deployments: [vendor], shadow: {deployment: qwen-self, sample: 0.25}}
  self-first: {deployments: [qwen-self], shadow: {deployment: other-vendor, sample: 1}}
  plain: {deployments: [vendor]}
teams:
  gov: {}
  quiet: {}
rules:
  - name: confidential-stays-home
    when: {data_class_at_least: confidential}
    require: {hosting: self}
  - name: gov-no-cn
    when: {team: [gov]}
    require: {origin: {not_in: [CN]}}
  - name: quiet-team
    when: {team: [quiet]}
    shadow: false
  - name: try-the-mini
    when: {headers: {x-try: ["mini"]}}
    shadow: {deployment: other-vendor, sample: 1}
""").policy


def facts(model: str = "support", **kw: object) -> RequestFacts:
    return RequestFacts(endpoint=kw.pop("endpoint", Endpoint.CHAT), model=model, prompt_tokens=kw.pop("prompt_tokens", 20),
                        **kw)  # type: ignore[arg-type]


def plan(f: RequestFacts, request_id: str = "req-1"):  # noqa: ANN201
    return decide(f, POLICY, {}, decision_id=request_id).shadow


def test_a_model_without_a_shadow_has_no_plan() -> None:
    assert plan(facts("plain")) is None


def test_a_sampled_request_that_fits_is_shadowed() -> None:
    p = plan(facts())
    assert p is not None and (p.deployment, p.sample, p.sampled, p.skipped, p.set_by) == ("qwen-self", 1.0, True, None, "model")
    assert p.shadowed


def test_a_shadow_that_meets_the_requirements_is_kept() -> None:
    p = plan(facts(data_class="confidential"))  # hosting self required: the self-hosted shadow meets it
    assert p is not None and p.shadowed


@pytest.mark.parametrize("f, reason", [
    (facts("self-first", data_class="confidential"), "rule_requirement"),  # a vendor shadow does not
    (facts(team="gov"), "rule_requirement"),                        # origin CN barred for gov
    (facts(features=frozenset({"vision"})), "capability_missing"),
    (facts(prompt_tokens=20000), "context_too_small"),
    (facts(endpoint=Endpoint.EMBEDDINGS), "not_compared"),
])
def test_the_shadow_is_held_to_the_requests_requirements_and_fit(f: RequestFacts, reason: str) -> None:
    p = plan(f)
    assert p is not None and p.sampled and p.skipped == reason and not p.shadowed
    assert p.detail


def test_a_confidential_request_is_never_shadowed_to_a_vendor_though_its_primary_is_self_hosted() -> None:
    d = decide(facts("self-first", data_class="confidential"), POLICY, {}, decision_id="r")
    assert [t.deployment for t in d.targets] == ["qwen-self"]
    assert d.shadow is not None and d.shadow.skipped == "rule_requirement" and "vendor" in d.shadow.detail


def test_a_rule_turns_shadowing_off() -> None:
    assert plan(facts(team="quiet")) is None


def test_a_rules_shadow_wins_over_the_models() -> None:
    p = plan(facts(headers={"x-try": "mini"}))
    assert p is not None and p.deployment == "other-vendor" and p.set_by == "try-the-mini"


def test_a_denied_request_has_no_shadow() -> None:
    policy = parse_policy("""
deployments: {v: {type: openai, model: m, hosting: vendor, price: {input_per_mtok: 1, output_per_mtok: 1}},
              s: {type: vllm, model: q, api_base: "http://127.0.0.1:8000/v1", hosting: self}}
models: {m: {deployments: [v], shadow: {deployment: s, sample: 1}}}
rules: [{name: closed-rule, deny: closed}]
""").policy
    assert decide(facts("m"), policy, {}, decision_id="r").shadow is None


def test_sampling_is_deterministic_and_close_to_the_rate() -> None:
    ids = [f"request-{i}" for i in range(20000)]
    picked = [i for i in ids if in_sample(i, 0.25)]
    assert picked == [i for i in ids if in_sample(i, 0.25)], "the same id always gets the same answer"
    assert 0.23 < len(picked) / len(ids) < 0.27
    assert all(in_sample(i, 0.5) for i in picked), "a larger sample keeps every id a smaller one had"
    p = plan(facts("sampled"), picked[0])
    q = plan(facts("sampled"), next(i for i in ids if i not in picked))
    assert p is not None and p.sampled and q is not None and not q.sampled and q.skipped is None


def test_explain_shows_the_shadow_plan() -> None:
    from gateway.policy.models import GoldenCase

    case = GoldenCase(name="x", request={"model": "self-first", "messages": [{"role": "user", "content": "hi"}]},
                      headers={"x-data-class": "confidential"})
    shown = explain_case(POLICY, case)["decision"]["shadow"]
    assert shown["deployment"] == "other-vendor" and shown["sampled"] is True
    assert shown["skipped"] == "rule_requirement"
