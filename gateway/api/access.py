"""Who may call the gateway's own routes, as FastAPI dependencies (the proxy routes authenticate in
the pipeline; these guard the admin, metrics and documentation routes).

- ``admin_only``: the admin key (``GATEWAY_ADMIN_KEY``) or a policy key marked ``admin: true``.
- ``metrics_reader``: anyone, unless ``GATEWAY_METRICS_KEY`` is set; then that key as a bearer token
  (a scrape credential that can do nothing else) or an admin key. ``/metrics`` carries per-team spend.
- ``docs_reader``: as ``GATEWAY_DOCS`` says: ``open``, ``admin`` (admin keys only) or ``off`` (not served).
"""

from __future__ import annotations

import hmac

from fastapi import Request

from gateway.api.headers import header_map
from gateway.core.errors import AuthenticationFailed, PermissionDenied
from gateway.pipeline.auth import Identity, authenticate, bearer_token
from gateway.pipeline.service import ProxyService


def caller(request: Request) -> Identity:
    service: ProxyService = request.app.state.proxy
    authorization = header_map(request.scope["headers"]).get("authorization")
    return authenticate(service.runtime.snapshot, authorization, service.admin_key)


async def admin_only(request: Request) -> Identity:
    identity = caller(request)
    if not identity.admin:
        raise PermissionDenied("Only admin keys may use this endpoint.")
    return identity


async def metrics_reader(request: Request) -> None:
    key: str | None = request.app.state.settings.metrics_key
    if not key:
        return
    token = bearer_token(header_map(request.scope["headers"]).get("authorization"))
    if token is not None and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), key.encode()):
        return
    if token is None:
        raise AuthenticationFailed("Metrics need a bearer key (GATEWAY_METRICS_KEY or an admin key).")
    await admin_only(request)


async def docs_reader(request: Request) -> None:
    if request.app.state.settings.docs == "admin":
        await admin_only(request)
