"""Prices per deployment: the policy's own, else the repository's versioned price map (``price_map.py``).

Money fails closed: a vendor deployment whose price is in neither is an error at load (``unpriced``
names it, and the loader reports it at the deployment's ``file:line``), never a free deployment that
ranks first under the cost objective and spends nothing against budgets. Self-hosted deployments may
be free (their cost is the GPUs you already pay for, unless ``gpu_hour_usd`` says otherwise).
"""

from __future__ import annotations

from gateway.policy import price_map
from gateway.policy.models import Deployment, Policy, Price

_PROVIDER_PREFIX = {"openai": "", "anthropic": "anthropic/", "gemini": "gemini/", "deepseek": "deepseek/",
                    "moonshot": "moonshot/", "dashscope": "dashscope/", "zhipu": "zai/"}


def complete_price(dep: Deployment) -> bool:
    """The GPU pricing (kept whole by the model), or an input price plus an output price (which a
    deployment serving only embeddings, which generate no output tokens, may leave out)."""
    price = dep.price
    if price.gpu_hour_usd is not None:
        return True
    if price.input_per_mtok is None:
        return False
    return price.output_per_mtok is not None or set(dep.endpoints) <= {"embeddings"}


def lookup_price(dep: Deployment) -> tuple[float, float] | None:
    """(input, output) USD per million tokens from the price map, or None when it does not know the model."""
    table = price_map.load()
    prefix = _PROVIDER_PREFIX.get(dep.type, "")
    for key in (dep.model, prefix + dep.model, dep.model.split("/", 1)[-1]):
        entry = table.get(key)
        if isinstance(entry, dict) and entry.get("input_cost_per_token") is not None:
            return entry["input_cost_per_token"] * 1e6, (entry.get("output_cost_per_token") or 0.0) * 1e6
    return None


def unpriced(policy: Policy) -> list[str]:
    """Vendor deployments with no price in the policy nor in the price map (load errors)."""
    return [
        name for name, dep in policy.deployments.items()
        if dep.hosting == "vendor" and not complete_price(dep) and lookup_price(dep) is None
    ]


def resolve_prices(policy: Policy) -> Policy:
    """A copy of ``policy`` where vendor deployments without a price carry the price map's price."""
    updated = {}
    for name, dep in policy.deployments.items():
        if dep.hosting == "vendor" and not complete_price(dep):
            found = lookup_price(dep)
            if found is not None:  # the map fills what the policy left out, never overrides what it set
                given = dep.price
                price = Price(input_per_mtok=found[0] if given.input_per_mtok is None else given.input_per_mtok,
                              output_per_mtok=found[1] if given.output_per_mtok is None else given.output_per_mtok)
                updated[name] = dep.model_copy(update={"price": price})
    if not updated:
        return policy
    return policy.model_copy(update={"deployments": {**policy.deployments, **updated}})


def request_cost(dep: Deployment, prompt_tokens: int, completion_tokens: int) -> float:
    price_in, price_out = dep.price.per_mtok()
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000
