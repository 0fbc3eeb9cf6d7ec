"""Model names the way clients send them: dated variants and background-call models reach a model through
its aliases and glob patterns, without each being listed; rules and team lists see the model's own name."""

from __future__ import annotations

import pytest

from gateway.core.errors import ModelNotFound, PermissionDenied
from gateway.core.types import Endpoint, RequestFacts
from gateway.policy.loader import PolicyError, parse_policy
from gateway.routing.engine import decide

POLICY = parse_policy("""
deployments:
  qwen:  {type: vllm, model: q, api_base: "http://127.0.0.1:1/v1", hosting: self, capabilities: [tools]}
  small: {type: vllm, model: s, api_base: "http://127.0.0.1:1/v1", hosting: self}
  opus:  {type: anthropic, model: claude-opus, hosting: vendor, price: {input_per_mtok: 15, output_per_mtok: 75}}
models:
  coder:
    deployments: [qwen]
    aliases: [claude-sonnet-4-5, "claude-sonnet-4-*", "claude-3-7-sonnet-*", gpt-5-codex]
  background:
    deployments: [small]
    aliases: ["*haiku*", "gpt-5-mini*"]
  best:
    deployments: [opus]
    aliases: ["claude-opus-*"]
  catch-all:
    deployments: [qwen]
    aliases: ["claude-*"]
teams:
  interns: {models: [background]}
rules:
  - name: coder-rule
    when: {model: [coder]}
    objective: latency
""").policy


def decide_for(model: str, team: str = "default") -> tuple[str, str, list[str]]:
    decision = decide(RequestFacts(endpoint=Endpoint.CHAT, model=model, team=team, prompt_tokens=10), POLICY, {})
    return decision.model, decision.rule, [t.deployment for t in decision.targets]


@pytest.mark.parametrize("sent, model, deployment", [
    ("coder", "coder", "qwen"),  # the model's own name
    ("claude-sonnet-4-5", "coder", "qwen"),  # an exact alias
    ("claude-sonnet-4-5-20250929", "coder", "qwen"),  # a dated variant, by pattern
    ("claude-sonnet-4-20250514", "coder", "qwen"),
    ("claude-3-7-sonnet-20250219", "coder", "qwen"),
    ("gpt-5-codex", "coder", "qwen"),
    ("claude-3-5-haiku-20241022", "background", "small"),  # the small, fast model of background calls
    ("claude-haiku-4-5", "background", "small"),
    ("gpt-5-mini-2025-08-07", "background", "small"),
    ("claude-opus-4-1-20250805", "best", "opus"),
    ("claude-instant-1", "catch-all", "qwen"),  # patterns are tried in the order the models are listed
])
def test_aliases_and_patterns_select_the_model(sent: str, model: str, deployment: str) -> None:
    resolved, _, targets = decide_for(sent)
    assert resolved == model
    assert targets == [deployment]


def test_rules_match_the_models_own_name() -> None:
    assert decide_for("claude-sonnet-4-20250514")[1] == "coder-rule"
    assert decide_for("claude-3-5-haiku-latest")[1] == "default"


def test_team_lists_apply_to_the_resolved_model() -> None:
    assert decide_for("claude-3-5-haiku-20241022", team="interns")[0] == "background"
    with pytest.raises(PermissionDenied):
        decide_for("claude-sonnet-4-20250514", team="interns")


@pytest.mark.parametrize("sent", ["gpt-4o", "Claude-Sonnet-4-5", "", "claude", "coder "])
def test_unmatched_names_are_not_found(sent: str) -> None:
    with pytest.raises(ModelNotFound):
        decide_for(sent)


def test_glob_syntax_is_matched_literally_in_exact_names() -> None:
    """A client cannot reach a model by sending a pattern: only the policy's aliases are patterns."""
    for sent in ("*", "?", "coder*", "[a-z]*"):
        with pytest.raises(ModelNotFound):
            decide_for(sent)
    assert POLICY.resolve_model("*haiku*") == "background"  # a pattern matches its own text, nothing more


def test_exact_aliases_and_resolution() -> None:
    assert POLICY.exact_aliases("coder") == ("claude-sonnet-4-5", "gpt-5-codex")
    assert POLICY.exact_aliases("background") == ()
    assert POLICY.resolve_model("coder") == "coder"
    assert POLICY.resolve_model("nothing") is None


@pytest.mark.parametrize("models, message", [
    ("{a: {deployments: [d], aliases: [b]}, b: {deployments: [d]}}", "models.a.aliases.0: 'b' already names the model 'b'"),
    ("{a: {deployments: [d], aliases: [x]}, b: {deployments: [d], aliases: [x]}}", "models.b.aliases.0: 'x' already names the model 'a'"),
    ("{a: {deployments: [d], aliases: ['']}}", "models.a.aliases.0: empty name"),
])
def test_conflicting_aliases_are_load_errors(models: str, message: str) -> None:
    text = f"deployments: {{d: {{type: simulator, model: m, hosting: self}}}}\nmodels: {models}\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert message in str(info.value)
