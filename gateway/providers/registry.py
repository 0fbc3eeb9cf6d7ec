"""Provider implementations chosen by a deployment's ``type``, imported lazily.

Only the implementations a policy actually uses are imported, so a policy with no litellm-backed
deployment never pays litellm's multi-second, 200 MiB import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.models import Deployment
from gateway.providers.base import Provider

_OPENAI_COMPAT = "gateway.providers.openai_compat:OpenAICompatProvider"
_LITELLM = "gateway.providers.litellm_adapter:LiteLLMProvider"
_SIMULATED = "gateway.providers.simulated:SimulatedProvider"

IMPLEMENTATIONS: dict[str, str] = {
    "openai_compatible": _OPENAI_COMPAT,
    "openai": _OPENAI_COMPAT,
    "vllm": _OPENAI_COMPAT,
    "sglang": _OPENAI_COMPAT,
    "ollama": _OPENAI_COMPAT,
    "llamacpp": _OPENAI_COMPAT,
    "deepseek": _OPENAI_COMPAT,
    "moonshot": _OPENAI_COMPAT,
    "dashscope": _OPENAI_COMPAT,
    "zhipu": _OPENAI_COMPAT,
    "anthropic": _LITELLM,
    "gemini": _LITELLM,
    "litellm": _LITELLM,
    "simulator": _SIMULATED,
}

DEFAULT_API_BASES: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "vllm": "http://127.0.0.1:8000/v1",
    "sglang": "http://127.0.0.1:30000/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    # No llamacpp default: llama-server's own default port, 8080, is the gateway's, so a default would
    # send requests back into the gateway. `api_base` is required for it (checked at policy load).
    "deepseek": "https://api.deepseek.com/v1",
    "moonshot": "https://api.moonshot.ai/v1",
    "dashscope": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
    "zhipu": "https://open.bigmodel.cn/api/paas/v4",
}

PROVIDER_TYPES = tuple(IMPLEMENTATIONS)


@dataclass
class ProviderContext:
    """Things providers share within one gateway process (connection pools, embedded simulator)."""

    shared: dict[str, Any] = field(default_factory=dict)


def provider_class(type_name: str) -> type[Provider]:
    try:
        target = IMPLEMENTATIONS[type_name]
    except KeyError:
        raise ValueError(f"unknown provider type {type_name!r}; known: {', '.join(PROVIDER_TYPES)}") from None
    module_name, _, attr = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), attr)
    return cls


def build_provider(deployment: Deployment, context: ProviderContext) -> Provider:
    """Instantiate the provider for one policy deployment (see ``policy.models.Deployment``)."""
    return provider_class(deployment.type)(deployment, context)  # type: ignore[call-arg]  # the protocol has no __init__
