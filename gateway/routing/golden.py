"""Run a policy's golden cases through the real facts builder and engine, without any upstream."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import GatewayError
from gateway.core.types import Decision, Endpoint, RequestFacts
from gateway.policy.models import GoldenCase, Policy
from gateway.routing.engine import decide
from gateway.routing.facts import FactsBuilder


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: GoldenCase
    decision: Decision | None
    error: GatewayError | None
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems


def decide_case(policy: Policy, case: GoldenCase, facts_builder: FactsBuilder | None = None,
                version: str = "") -> Decision:
    return decide(_case_facts(policy, case, facts_builder), policy, {}, decision_id=f"golden:{case.name}",
                  policy_version=version)


def explain_case(policy: Policy, case: GoldenCase, version: str = "") -> dict[str, Any]:
    """What ``POST /v1/gateway/explain`` answers for the case's request: the decision and the facts."""
    facts = _case_facts(policy, case, None)
    decision = decide(facts, policy, {}, decision_id=f"explain:{case.name}", policy_version=version)
    shown = dataclasses.asdict(facts)
    shown["features"] = sorted(shown["features"])
    return {"decision": decision.to_dict(), "facts": shown}


def _case_facts(policy: Policy, case: GoldenCase, facts_builder: FactsBuilder | None) -> RequestFacts:
    builder = facts_builder or FactsBuilder(policy)
    team = case.team
    if team is None and case.key is not None:
        team = next((k.team for k in policy.keys if k.name == case.key), "default")
    facts = builder.build(
        Endpoint.CHAT, case.request, {k.lower(): v for k, v in case.headers.items()},
        team=team or "default", key=case.key or "anonymous", now=0,
    )
    if case.assume_prompt_tokens is not None:
        facts = dataclasses.replace(facts, prompt_tokens=case.assume_prompt_tokens)
    return facts


def run_case(policy: Policy, case: GoldenCase, builder: FactsBuilder) -> CaseResult:
    try:
        decision = decide_case(policy, case, builder)
    except GatewayError as exc:
        expected = () if case.expect_denied else (f"expected a route, got error {exc.kind}: {exc.message}",)
        return CaseResult(case, None, exc, expected)
    got_targets = tuple(t.deployment for t in decision.targets)
    problems: list[str] = []
    denied = decision.denied is not None
    if case.expect_denied != denied:
        problems.append(f"denied: expected {case.expect_denied}, got {denied}" + (f" ({decision.denied})" if denied else ""))
    if case.expect_deployment is not None:
        got = got_targets[0] if got_targets else None
        if got != case.expect_deployment:
            problems.append(f"deployment: expected {case.expect_deployment}, got {got}")
    if case.expect_targets is not None and got_targets != tuple(case.expect_targets):
        problems.append(f"targets: expected {list(case.expect_targets)}, got {list(got_targets)}")
    if case.expect_rule is not None and decision.rule != case.expect_rule:
        problems.append(f"rule: expected {case.expect_rule}, got {decision.rule}")
    return CaseResult(case, decision, None, tuple(problems))


def run_golden(policy: Policy) -> list[CaseResult]:
    builder = FactsBuilder(policy)
    return [run_case(policy, case, builder) for case in policy.tests]
