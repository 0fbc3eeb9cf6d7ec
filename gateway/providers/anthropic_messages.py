"""Anthropic's Messages API, passed through: for a client that speaks it to a deployment that does.

The client's body goes out untouched (model id and output cap set by the pipeline), its events and
answer come back byte for byte, over the same transport as every passthrough (pooling, proxies, CA
bundles, caps, error translation, secrets scrubbed). Only what differs from OpenAI's passthrough is
here: the base URL (``…/v1``, Anthropic's public API by default), the key sent as ``x-api-key``, and a
default ``anthropic-version`` (a client's own ``anthropic-version`` and ``anthropic-beta`` headers are
forwarded by the pipeline and win). The type ``anthropic`` serves chat completions through litellm
and Messages through this.
"""

from __future__ import annotations

from gateway.policy.models import Deployment
from gateway.providers.openai_compat import OpenAICompatProvider
from gateway.providers.registry import ProviderContext

ANTHROPIC_API = "https://api.anthropic.com/v1"
ANTHROPIC_VERSION = "2023-06-01"


def messages_base(api_base: str | None) -> str:
    """The deployment's base URL as the Messages path needs it: ending in ``/v1``."""
    base = (api_base or ANTHROPIC_API).rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


class AnthropicMessagesPassthrough(OpenAICompatProvider):
    def __init__(self, deployment: Deployment, context: ProviderContext) -> None:
        super().__init__(deployment.model_copy(update={"api_base": messages_base(deployment.api_base)}), context)

    @staticmethod
    def auth_headers(deployment: Deployment) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        return headers
