"""Admission steps around routing: budgets before the decision, rate limits and the cache after it."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.core.errors import BudgetExceeded, RateLimited
from gateway.core.types import RequestFacts
from gateway.metrics.recorder import MetricsRecorder
from gateway.pipeline.call import Call
from gateway.policy.models import RateLimit
from gateway.state import CacheEntry, StateService

_CACHE_RESULT = {"lookup": "miss", "no-cache": "bypass", "bypass": "bypass", "no-store": "bypass", "uncacheable": "bypass"}


class Admission:
    def __init__(self, state: StateService, recorder: MetricsRecorder) -> None:
        self.state = state
        self.recorder = recorder

    async def budget(self, call: Call, facts: RequestFacts) -> RequestFacts:
        """Refuse a team over a `deny` budget; mark the facts for pacing in a `pace` budget's zone."""
        assert call.snapshot is not None
        policy = call.snapshot.policy
        team = policy.teams.get(facts.team)
        if team is None or team.budget is None:
            return facts
        try:
            status = await self.state.budgets.check(facts.team, team.budget, on_failure=policy.defaults.rate_limit_failure)
        except BudgetExceeded:
            self.recorder.budget_denied(facts.team, "deny")
            spent = await self.state.budgets.status(facts.team, team.budget)  # the same cached read: cheap
            self.recorder.budget_remaining(facts.team, spent.remaining_day_usd, spent.remaining_month_usd)
            raise
        if status is None:
            return facts
        self.recorder.budget_remaining(facts.team, status.remaining_day_usd, status.remaining_month_usd)
        if status.pacing:
            self.recorder.budget_denied(facts.team, "pace")
            return dataclasses.replace(facts, budget_pacing=True)
        return facts

    def _limits(self, call: Call) -> tuple[RateLimit | None, RateLimit | None]:
        assert call.snapshot is not None and call.identity is not None
        policy = call.snapshot.policy
        key = call.snapshot.keys_by_name.get(call.identity.key)
        team = policy.teams.get(call.identity.team)
        return (key.rate_limit if key else None), (team.rate_limit if team else None)

    def limits_apply(self, call: Call) -> bool:
        return self._limits(call) != (None, None)

    async def rate_limit(self, call: Call) -> None:
        assert call.snapshot is not None and call.identity is not None and call.facts is not None
        policy = call.snapshot.policy
        identity = call.identity
        key_limit, team_limit = self._limits(call)
        if key_limit is None and team_limit is None:
            return
        facts = call.facts
        tokens = facts.prompt_tokens + (facts.max_output_tokens or policy.defaults.expected_output_tokens)
        try:
            call.ticket = await self.state.limiter.acquire(
                key=identity.key, team=identity.team, key_limit=key_limit, team_limit=team_limit, tokens=tokens,
                on_failure=policy.defaults.rate_limit_failure,
            )
        except RateLimited as exc:
            self.recorder.rate_limited(identity.team, getattr(exc, "scope", "key"), exc.type)
            raise

    async def cache_lookup(self, call: Call, body: dict[str, Any], headers: Any) -> CacheEntry | None:
        assert call.decision is not None and call.snapshot is not None and call.facts is not None
        plan = call.plan = self.state.cache.plan(
            call.endpoint.value, body, headers, call.decision.cache,
            team=call.facts.team, data_class=call.facts.data_class,
        )
        if plan.status == "disabled":
            call.cache_result = "off"  # said in x-gateway-cache, so "why no hit?" has an answer
            return None
        call.cache_result = _CACHE_RESULT.get(plan.status, "bypass")
        if not plan.read:
            return None
        deployments = call.snapshot.policy.deployments
        targets = [t.deployment for t in call.decision.targets]
        # Only answers the request could have received fresh: same targets, same hosting classes.
        hostings = {deployments[name].hosting for name in targets}
        entry = await self.state.cache.lookup(plan, hostings, targets)
        if entry is not None:
            call.cache_result = "hit"
        return entry
