"""Evaluate a rule's ``when`` against request facts, and a ``require`` against a deployment. Pure."""

from __future__ import annotations

from gateway.core.types import RequestFacts
from gateway.policy.conditions import DATA_CLASSES, Condition, Requirement
from gateway.policy.models import Deployment

_RANK = {name: i for i, name in enumerate(DATA_CLASSES)}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def data_class_rank(name: str) -> int:
    return _RANK.get(name, 0)


def matches(cond: Condition, facts: RequestFacts) -> bool:  # noqa: C901 - a flat list of checks reads best
    if cond.team is not None and facts.team not in cond.team:
        return False
    if cond.key is not None and facts.key not in cond.key:
        return False
    if cond.model is not None and facts.model not in cond.model:
        return False
    if cond.endpoint is not None and facts.endpoint.value not in cond.endpoint:
        return False
    if cond.data_class is not None and facts.data_class not in cond.data_class:
        return False
    if cond.data_class_at_least is not None and data_class_rank(facts.data_class) < _RANK[cond.data_class_at_least]:
        return False
    if cond.detected is not None and not set(cond.detected) & set(facts.detected):
        return False
    if cond.sensitive is not None and bool(facts.detected) != cond.sensitive:
        return False
    if cond.prompt_tokens is not None and not cond.prompt_tokens.contains(facts.prompt_tokens):
        return False
    if cond.features is not None and not set(cond.features) <= facts.features:
        return False
    if cond.stream is not None and facts.stream != cond.stream:
        return False
    if cond.headers is not None:
        for name, allowed in cond.headers.items():
            if facts.headers.get(name) not in allowed:
                return False
    if cond.metadata is not None:
        for name, allowed in cond.metadata.items():
            if str(facts.metadata.get(name)) not in allowed:
                return False
    if cond.hours_utc is not None and not cond.hours_utc.contains(facts.hour_utc):
        return False
    if cond.weekdays is not None and _WEEKDAYS[facts.weekday] not in cond.weekdays:
        return False
    if cond.all is not None and not all(matches(c, facts) for c in cond.all):
        return False
    if cond.any is not None and not any(matches(c, facts) for c in cond.any):
        return False
    return not (cond.not_ is not None and matches(cond.not_, facts))


def unmet_requirement(req: Requirement, dep: Deployment) -> str | None:
    """The first attribute of ``dep`` that violates ``req``, described, or None when it complies."""
    if req.hosting is not None and dep.hosting != req.hosting:
        return f"hosting is {dep.hosting}, {req.hosting} required"
    # Origins and regions are labels people write in either case (CN, cn): compared case-folded.
    if req.origin is not None and not req.origin.allows(dep.origin, fold_case=True):
        return f"origin {dep.origin} not allowed"
    if req.region is not None and not req.region.allows(dep.region, fold_case=True):
        return f"region {dep.region} not allowed"
    if req.deployments is not None and not req.deployments.allows(dep.name):
        return "deployment not allowed"
    if req.capabilities is not None:
        missing = [c for c in req.capabilities if c not in dep.capabilities]
        if missing:
            return f"lacks required {', '.join(missing)}"
    if req.min_context_window is not None and dep.context_window < req.min_context_window:
        return f"context window {dep.context_window} below required {req.min_context_window}"
    return None
