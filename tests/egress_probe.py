"""Run as a program by ``test_egress_proxy.py``: one call each through the passthrough and litellm's
Anthropic and Gemini paths, with default egress settings, in a fresh process (litellm keeps its HTTP
clients process-wide, built with the environment of the moment, so each environment needs its own process).

    python -m tests.egress_probe SIMULATOR_URL
"""

from __future__ import annotations

import asyncio
import sys

from gateway.providers.base import Timeouts
from gateway.providers.litellm_adapter import LiteLLMProvider
from gateway.providers.openai_compat import OpenAICompatProvider
from gateway.providers.registry import ProviderContext
from tests.upstream_support import call, deployment, vendor_deployment


async def main(sim: str) -> None:
    vendor = [LiteLLMProvider(vendor_deployment(t, t, model, base)) for t, model, base in (("anthropic", "claude-x", sim), ("gemini", "gemini-1.5-flash", f"{sim}/v1beta"))]
    providers = [OpenAICompatProvider(deployment(f"{sim}/v1"), ProviderContext()), *vendor]
    body = {"model": "sim-small", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    for p in providers:
        reply = await p.complete(call(body, timeouts=Timeouts(connect=2, first_byte=10, idle=10, total=20)))
        assert reply.status == 200
        await p.aclose()
    print("ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
