"""The litellm path's HTTP client for a deployment with its own egress settings (proxy, CA, client cert).

litellm takes a ready client per call (``client=``, an ``AsyncHTTPHandler`` around an ``httpx`` client);
without one it uses its process-wide clients, which honour the environment's proxies and the system's
CAs. So a deployment whose ``egress`` is the default keeps litellm's own client, and one with settings
gets an ``httpx`` transport built from the same ``EgressSettings`` as the passthrough path, with the proxy
resolved the same way (``transport.environment_proxy``): the two paths reach an upstream identically.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.providers.egress import EgressSettings
from gateway.providers.litellm_runtime import litellm
from gateway.providers.transport import environment_proxy

# Where litellm sends a deployment without api_base (needed to resolve NO_PROXY for it).
VENDOR_BASES = {"anthropic": "https://api.anthropic.com", "gemini": "https://generativelanguage.googleapis.com"}


def litellm_client(provider_type: str, api_base: str | None, egress: EgressSettings) -> Any | None:
    """An ``AsyncHTTPHandler`` for litellm's ``client=``, or ``None`` to let litellm use its own."""
    if egress.is_default:
        return None
    target = api_base or VENDOR_BASES.get(provider_type, "https://localhost")
    proxy = egress.proxy or (environment_proxy(target) if egress.environment_proxy else None)
    transport = httpx.AsyncHTTPTransport(
        verify=egress.ssl_context(), proxy=httpx.Proxy(proxy.with_credentials()) if proxy else None,
    )
    handler_class = litellm.llms.custom_httpx.http_handler.AsyncHTTPHandler  # type: ignore[attr-defined]
    return handler_class(transport=transport, follow_redirects=False)
