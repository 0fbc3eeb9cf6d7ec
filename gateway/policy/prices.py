"""Prices per deployment: the policy's own, else litellm's bundled price map.

The map is read as a JSON file from litellm's installed package (never by importing litellm, which
costs seconds and ~200 MiB), once per policy load, off the request path.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.policy.models import Deployment, Policy, Price

log = logging.getLogger("gateway.prices")

_PROVIDER_PREFIX = {"openai": "", "anthropic": "anthropic/", "gemini": "gemini/", "deepseek": "deepseek/",
                    "moonshot": "moonshot/", "dashscope": "dashscope/", "zhipu": "zai/"}


@lru_cache(maxsize=1)
def bundled_price_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("litellm's bundled price map could not be read: %s", exc)
        return {}


def has_explicit_price(price: Price) -> bool:
    return any(v is not None for v in (price.input_per_mtok, price.output_per_mtok, price.gpu_hour_usd))


def lookup_price(dep: Deployment) -> tuple[float, float] | None:
    """(input, output) USD per million tokens from the bundled map, or None when it does not know the model."""
    table = bundled_price_map()
    prefix = _PROVIDER_PREFIX.get(dep.type, "")
    for key in (dep.model, prefix + dep.model, dep.model.split("/", 1)[-1]):
        entry = table.get(key)
        if isinstance(entry, dict) and entry.get("input_cost_per_token") is not None:
            return entry["input_cost_per_token"] * 1e6, (entry.get("output_cost_per_token") or 0.0) * 1e6
    return None


def resolve_prices(policy: Policy) -> Policy:
    """A copy of ``policy`` where vendor deployments without a price carry the bundled map's price."""
    updated = {}
    for name, dep in policy.deployments.items():
        if dep.hosting == "vendor" and not has_explicit_price(dep.price):
            found = lookup_price(dep)
            if found is not None:
                updated[name] = dep.model_copy(update={"price": Price(input_per_mtok=found[0], output_per_mtok=found[1])})
    if not updated:
        return policy
    return policy.model_copy(update={"deployments": {**policy.deployments, **updated}})


def request_cost(dep: Deployment, prompt_tokens: int, completion_tokens: int) -> float:
    price_in, price_out = dep.price.per_mtok()
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000
