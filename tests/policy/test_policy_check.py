"""`gateway policy check` finds every mistake of a policy in one run, each at its line and column.

The corpus is ``tests/policies/broken/``: one file per kind of mistake, each ending with the exact
findings it must produce (``# expect: LINE:COL [warning: |note: ]MESSAGE``). Every finding must be
expected and every expectation found: a new false alarm fails as surely as a missed mistake.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.core.types import Endpoint, RequestFacts
from gateway.policy.loader import parse_policy
from gateway.routing.engine import decide
from gateway.routing.lint import check_file
from tests import servers
from tests.conftest import POLICIES

BROKEN = sorted((POLICIES / "broken").glob("*.yaml"))
SHIPPED = sorted((servers.ROOT / "policies").glob("*.yaml")) + sorted((servers.ROOT / "bench" / "traffic").glob("*.yaml"))
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) (?:(warning|note): )?(.*)$")


def _expected(path: Path) -> set[tuple[int, int, str, str]]:
    found = set()
    for line in path.read_text().splitlines():
        m = _EXPECT.match(line)
        if m:
            found.add((int(m.group(1)), int(m.group(2)), m.group(3) or "error", m.group(4)))
    return found


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_every_mistake_is_found_at_its_place(path: Path) -> None:
    expected = _expected(path)
    assert expected, f"{path.name} states no expectations"
    got = {(i.line, i.column, i.severity, i.message) for i in check_file(str(path), env={}).issues}
    assert got == expected, f"missing: {sorted(expected - got)}\nunexpected: {sorted(got - expected)}"


def test_schema_environment_and_reference_errors_come_together() -> None:
    issues = check_file(str(POLICIES / "broken" / "all-at-once.yaml"), env={}).issues
    messages = " | ".join(i.message for i in issues)
    for kind in ("environment variable", "is not one of", "unknown key", "unknown deployment", "unknown team"):
        assert kind in messages, kind


def test_a_secret_value_is_never_repeated() -> None:
    """The key pasted where its hash belongs must not reach the output (which ends up in CI logs)."""
    run = _check(str(POLICIES / "broken" / "all-at-once.yaml"))
    assert "sk-live-this-is-the-key-itself" not in run.stdout + run.stderr
    assert "keys.0.sha256: must be 64 hex digits" in run.stdout
    numeric = parse_error("deployments:\n  a: {type: vllm, model: m, api_base: 'http://x/v1', hosting: self, api_key: 123456}\n"
                          "models: {auto: {deployments: [a]}}\n")
    assert "123456" not in numeric and "put it in quotes" in numeric


def parse_error(text: str) -> str:
    from gateway.policy.loader import PolicyError

    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.yaml", env={})
    return str(err.value)


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "policy", "check", *args], capture_output=True, text=True,
                          cwd=servers.ROOT, timeout=120)


def test_exit_codes_errors_warnings_and_strict(tmp_path: Path) -> None:
    errors = _check(str(POLICIES / "broken" / "team-typo.yaml"))
    assert errors.returncode == 1 and "did you mean 'payments'?" in errors.stdout
    warnings = _check(str(POLICIES / "broken" / "never-matches.yaml"))
    assert warnings.returncode == 0, "warnings alone do not fail a check"
    assert ": warning: rule 'empty-range' can never match" in warnings.stdout
    assert "ok with warnings" in warnings.stdout
    strict = _check("--strict", str(POLICIES / "broken" / "never-matches.yaml"))
    assert strict.returncode == 1
    for run in (errors, warnings, strict):
        assert "Traceback" not in run.stderr


def test_errors_are_printed_before_warnings_and_notes(tmp_path: Path) -> None:
    run = _check(str(POLICIES / "broken" / "origin-values.yaml"))
    lines = [line for line in run.stdout.splitlines() if line.startswith(str(POLICIES))]
    kinds = ["warning" if ": warning:" in line else "note" if ": note:" in line else "error" for line in lines[:-1]]
    assert kinds == sorted(kinds, key=["error", "warning", "note"].index)
    assert run.returncode == 1


def test_shipped_policies_check_clean_even_strictly() -> None:
    """Notes (a model that refuses confidential data, by design) are allowed; warnings are not."""
    run = _check("--strict", *map(str, SHIPPED))
    assert run.returncode == 0, run.stdout + run.stderr
    assert ": warning:" not in run.stdout
    assert run.stdout.count(": ok — policy") == len(SHIPPED)


def test_a_missing_file_is_one_error_not_a_traceback() -> None:
    run = _check("/nonexistent/policy.yaml")
    assert run.returncode == 1 and "cannot read policy file" in run.stdout and "Traceback" not in run.stderr


# Case is handled one way everywhere: origins and regions without regard to case (check and routing
# agree), names exactly (a name differing only in case is an error with the right name suggested).
CASES = """
deployments:
  qwen: {type: vllm, model: q, api_base: "http://127.0.0.1:1/v1", hosting: self, origin: CN, region: EU-West}
  llama: {type: vllm, model: l, api_base: "http://127.0.0.1:1/v1", hosting: self, origin: us, region: eu-west}
models:
  auto: {deployments: [qwen, llama]}
teams:
  gov: {}
  eu: {}
rules:
  - name: gov-no-cn
    when: {team: [gov]}
    require: {origin: {not_in: [cn]}}
  - name: eu-only
    when: {team: [eu]}
    require: {region: {in: [eu-west]}, origin: {in: [US, cn]}}
"""


def test_origin_and_region_compare_without_case_in_routing_too() -> None:
    policy = parse_policy(CASES).policy
    facts = RequestFacts(endpoint=Endpoint.CHAT, model="auto", team="gov", prompt_tokens=10)
    decision = decide(facts, policy, {})
    assert [t.deployment for t in decision.targets] == ["llama"]
    assert [(d.deployment, d.reason) for d in decision.dropped] == [("qwen", "rule_requirement")]
    both = decide(RequestFacts(endpoint=Endpoint.CHAT, model="auto", team="eu", prompt_tokens=10), policy, {})
    assert sorted(t.deployment for t in both.targets) == ["llama", "qwen"]


def test_requirements_merge_origins_without_case() -> None:
    from gateway.policy.conditions import Requirement

    a = Requirement.model_validate({"origin": {"in": ["US", "EU"]}})
    b = Requirement.model_validate({"origin": {"in": ["us"]}})
    assert a.merged(b).origin is not None and a.merged(b).origin.in_ == ("US",)


@pytest.mark.parametrize("text, expected", [
    ("teams: {payments: {}}\nrules: [{name: r, when: {team: [Payments]}, deny: x}]",
     "unknown team 'Payments' (did you mean 'payments'?)"),
    ("rules: [{name: r, when: {model: [AUTO]}, deny: x}]", "unknown model 'AUTO' (did you mean 'auto'?)"),
])
def test_names_compare_exactly(text: str, expected: str) -> None:
    base = "deployments: {a: {type: vllm, model: m, api_base: 'http://x/v1', hosting: self}}\nmodels: {auto: {deployments: [a]}}\n"
    assert expected in parse_error(base + text)


def test_yaml_reads_no_as_false_and_the_message_says_to_quote() -> None:
    message = parse_error("deployments:\n  a: {type: vllm, model: m, api_base: 'http://x/v1', hosting: self, origin: NO}\n"
                          "models: {auto: {deployments: [a]}}\n")
    assert "deployments.a.origin: should be text, but is false — put it in quotes" in message
