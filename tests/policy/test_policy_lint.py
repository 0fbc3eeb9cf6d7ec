"""Static checks of valid policies (``routing.lint``): what they report, and what they must not."""

from gateway.policy.conditions import Condition
from gateway.policy.loader import parse_policy
from gateway.routing.lint import lint, unsatisfiable
from gateway.routing.subsumption import covers

POLICY = """
deployments:
  v: {type: openai, model: gpt-4o, hosting: vendor}
  s: {type: vllm, model: q, api_base: "http://127.0.0.1:1/v1", hosting: self}
models:
  vendor-only: {deployments: [v]}
  mixed: {deployments: [v, s]}
rules:
  - name: self-only
    when: {data_class: [restricted]}
    require: {hosting: self}
  - name: mixed-only-rule
    when: {model: [mixed]}
    require: {hosting: vendor}
"""


def test_a_model_a_rule_leaves_without_deployments_is_a_note() -> None:
    found = unsatisfiable(parse_policy(POLICY).policy)
    assert [(f.path, f.severity) for f in found] == [(("rules", "0", "require"), "note")]
    assert "requests for vendor-only are refused" in found[0].message


def test_a_rule_no_model_can_satisfy_is_a_warning() -> None:
    text = POLICY.replace("when: {model: [mixed]}", "when: {model: [vendor-only]}").replace(
        "require: {hosting: vendor}", "require: {hosting: self}")
    found = [f for f in lint(parse_policy(text).policy) if f.severity == "warning"]
    assert [f.path for f in found] == [("rules", "1", "require")]
    assert "refuses every request it matches" in found[0].message


def c(**kw: object) -> Condition:
    return Condition.model_validate(kw)


def test_covers_is_conservative_and_right() -> None:
    assert covers(c(), c(team=["a"]))  # an empty condition matches everything
    assert covers(c(team=["a", "b"]), c(team=["a"], model=["m"]))
    assert not covers(c(team=["a"]), c(team=["a", "b"]))
    assert not covers(c(team=["a"]), c(model=["m"]))
    assert covers(c(data_class_at_least="confidential"), c(data_class=["restricted"]))
    assert not covers(c(data_class_at_least="confidential"), c(data_class=["internal", "restricted"]))
    assert covers(c(prompt_tokens={"gt": 1000}), c(prompt_tokens={"gte": 5000, "lt": 9000}))
    assert not covers(c(prompt_tokens={"gt": 1000}), c(prompt_tokens={"gte": 500}))
    assert covers(c(features=["tools"]), c(features=["tools", "vision"]))
    assert not covers(c(features=["tools", "vision"]), c(features=["tools"]))
    assert covers(c(hours_utc={"from": 22, "to": 6}), c(hours_utc={"from": 23, "to": 2}))
    assert not covers(c(hours_utc={"from": 22, "to": 6}), c(hours_utc={"from": 5, "to": 8}))
    assert covers(c(headers={"x-tier": ["free", "trial"]}), c(headers={"x-tier": ["free"]}, team=["a"]))
    assert covers(c(team=["a"]), c(all=[{"team": ["a"]}, {"model": ["m"]}]))
    assert covers(c(any=[{"team": ["a"]}, {"team": ["b"]}]), c(team=["b"]))
    assert not covers(c(**{"not": {"team": ["a"]}}), c(team=["b"]))  # true, but not provable field by field


def test_a_deny_shadows_only_what_it_covers() -> None:
    text = POLICY + """
  - name: block-restricted
    when: {data_class_at_least: restricted}
    deny: restricted data is not served here
  - name: restricted-vendor-only
    when: {data_class: [restricted], model: [vendor-only]}
    objective: latency
  - name: confidential-too
    when: {data_class_at_least: confidential}
    objective: latency
"""
    found = [f for f in lint(parse_policy(text).policy) if "never reached" in f.message]
    assert [f.path for f in found] == [("rules", "3")]
