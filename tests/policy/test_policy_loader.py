"""Policy loading: env interpolation, strictness, and errors that point at file:line:column."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.policy.loader import PolicyError, load_policy, parse_policy
from tests import servers

GOOD = """\
name: t
deployments:
  a:
    type: vllm
    model: m
    api_base: ${BASE:-http://127.0.0.1:8000/v1}
    api_key: ${KEY}
    hosting: self
models:
  auto:
    deployments: [a]
"""


def test_env_interpolation_with_defaults() -> None:
    loaded = parse_policy(GOOD, env={"KEY": "secret-1"})
    dep = loaded.policy.deployments["a"]
    assert dep.api_base == "http://127.0.0.1:8000/v1" and dep.api_key == "secret-1"
    assert parse_policy(GOOD, env={"KEY": "k", "BASE": "http://x/v1"}).policy.deployments["a"].api_base == "http://x/v1"
    assert "secret-1" not in repr(dep), "keys never show in reprs (and so never in logs)"


def test_version_is_content_hash() -> None:
    a = parse_policy(GOOD, env={"KEY": "k"}).version
    assert a == parse_policy(GOOD, env={"KEY": "k"}).version
    assert a != parse_policy(GOOD + "\n# changed\n", env={"KEY": "k"}).version


@pytest.mark.parametrize("text, expected", [
    (GOOD, "7:14: environment variable KEY is not set"),
    (GOOD.replace("    hosting: self\n", "    hosting: self\n    colour: red\n"), "9:5: deployments.a.colour: unknown key 'colour'"),
    (GOOD.replace("hosting: self", "hosting: cloud"), "8:5: deployments.a.hosting: 'cloud' is not one of self, vendor"),
    (GOOD.replace("deployments: [a]", "deployments: [a, b]"), "11:22: models.auto.deployments.1: unknown deployment 'b'"),
    (GOOD.replace("  auto:\n", "  auto:\n    objective: fastest\n"), "11:5: models.auto.objective"),
    (GOOD + "rules:\n  - name: r\n    when: {team: [x], colour: red}\n", "14:23: rules.0.when.colour: unknown key 'colour'"),
    (GOOD + "keys:\n  - {name: k, team: nobody, sha256: " + "a" * 64 + "}\n", "13:15: keys.0.team: unknown team 'nobody'"),
    (GOOD.replace("  a:\n", "  a:\n    type: vllm\n", 1), "5:5: duplicate key 'type'"),
    ("deployments: [\n", "YAML syntax"),
    ("- just a list\n", "1:1: a policy must be a YAML mapping"),
])
def test_errors_point_at_the_line(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yaml", env={} if "KEY is not set" in expected else {"KEY": "k"})
    assert any(expected in str(issue) for issue in err.value.issues), str(err.value)
    assert all(str(i).startswith("p.yaml:") for i in err.value.issues)


def test_all_errors_reported_at_once() -> None:
    text = GOOD.replace("hosting: self", "hosting: cloud\n    colour: red").replace("model: m", "model: 5")
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yaml", env={"KEY": "k"})
    assert len(err.value.issues) >= 2


def test_missing_file() -> None:
    with pytest.raises(PolicyError) as err:
        load_policy("/nonexistent/policy.yaml")
    assert "cannot read policy file" in str(err.value)


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(GOOD).replace("hosting: self", "hosting: self\n    colour: red"))
    run = subprocess.run([sys.executable, "-m", "gateway", "policy", "check", str(bad)], capture_output=True,
                         text=True, cwd=servers.ROOT, env={"KEY": "k", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 1
    assert f"{bad}:9:5: deployments.a.colour: unknown key 'colour'" in run.stdout
    run = subprocess.run([sys.executable, "-m", "gateway", "policy", "check", "policies/default.yaml"],
                         capture_output=True, text=True, cwd=servers.ROOT)
    assert run.returncode == 0 and "ok" in run.stdout


def test_vendor_price_defaults_to_bundled_map() -> None:
    text = GOOD.replace("hosting: self", "hosting: vendor").replace("model: m", "model: gpt-4o-mini").replace("type: vllm", "type: openai")
    dep = parse_policy(text, env={"KEY": "k"}).policy.deployments["a"]
    assert dep.price.per_mtok() == pytest.approx((0.15, 0.6))


def test_gpu_priced_self_hosting() -> None:
    text = GOOD.replace("hosting: self", "hosting: self\n    price: {gpu_hour_usd: 3.6, tokens_per_second: 1000}")
    dep = parse_policy(text, env={"KEY": "k"}).policy.deployments["a"]
    assert dep.price.per_mtok() == pytest.approx((1.0, 1.0))  # $3.6/h over 3.6M tokens/h


def test_unknown_provider_type_is_a_policy_error() -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(GOOD.replace("type: vllm", "type: vlmm"), "p.yaml", env={"KEY": "k"})
    assert "p.yaml:4:5: deployments.a.type" in str(err.value)


def test_policy_provider_types_match_the_registry() -> None:
    import typing

    from gateway.policy.models import ProviderType
    from gateway.providers.registry import PROVIDER_TYPES

    assert set(typing.get_args(ProviderType)) == set(PROVIDER_TYPES)


def test_policy_reference_is_current() -> None:
    from gateway.policy.reference import render
    from gateway.providers.registry import DEFAULT_API_BASES

    doc = (servers.ROOT / "docs" / "policy-reference.md").read_text()
    assert doc == render(DEFAULT_API_BASES), "run: gateway policy reference > docs/policy-reference.md"
    assert "| `vllm` | `http://127.0.0.1:8000/v1` |" in doc
    assert "| `llamacpp` | none: `api_base` is required |" in doc


def test_types_without_a_default_address_are_refused_at_load() -> None:
    """What the policy check demands (``references.NEEDS_API_BASE``) is what the provider would fail on."""
    from gateway.policy.references import NEEDS_API_BASE
    from gateway.providers.registry import _OPENAI_COMPAT, DEFAULT_API_BASES, IMPLEMENTATIONS

    without = {t for t, impl in IMPLEMENTATIONS.items() if impl == _OPENAI_COMPAT and t not in DEFAULT_API_BASES}
    assert without == set(NEEDS_API_BASE)
    assert "127.0.0.1:8080" not in " ".join(DEFAULT_API_BASES.values()), "the gateway's own default address"


def test_every_policy_field_is_documented() -> None:
    from gateway.policy.reference import SECTIONS

    undocumented = [f"{model.__name__}.{name}" for _, model, _ in SECTIONS for name, field in model.model_fields.items()
                    if not field.description and name != "name"]
    assert not undocumented


def test_condition_lists_accept_a_single_value() -> None:
    text = GOOD + "teams: {gov: {}}\nrules:\n  - name: r\n    when: {team: gov, headers: {x-tier: gold}}\n    deny: gold tier only\n"
    rule = parse_policy(text, env={"KEY": "k"}).policy.rules[0]
    assert rule.when.team == ("gov",) and rule.when.headers == {"x-tier": ("gold",)}
