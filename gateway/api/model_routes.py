"""OpenAI-compatible endpoints. Thin: read the body, hand it to the proxy service, return its response.

In a running gateway the three POST routes are served by ``fast_path.ProxyFastPath`` before FastAPI
sees them; they stay declared here so the OpenAPI document lists them and the app works without it.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.api.body import read_body
from gateway.api.disconnect import cancel_on_disconnect
from gateway.core.errors import ModelNotFound
from gateway.core.types import Endpoint
from gateway.pipeline.auth import authenticate
from gateway.pipeline.service import ProxyService

router = APIRouter()


async def _proxy(request: Request, endpoint: Endpoint) -> Response:
    started = time.perf_counter()
    service: ProxyService = request.app.state.proxy
    raw = await read_body(request.receive, request.headers, request.app.state.settings.max_body_bytes)
    return await cancel_on_disconnect(request.receive, service.handle(endpoint, raw, request.headers, started))


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    return await _proxy(request, Endpoint.CHAT)


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    return await _proxy(request, Endpoint.COMPLETIONS)


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    return await _proxy(request, Endpoint.EMBEDDINGS)


def _model_entries(request: Request) -> dict[str, dict[str, object]]:
    service: ProxyService = request.app.state.proxy
    snapshot = service.runtime.snapshot
    identity = authenticate(snapshot, request.headers.get("authorization"), service.admin_key)
    policy = snapshot.policy
    team = policy.teams.get(identity.team)
    allowed = team.models if team is not None and team.models is not None else None
    created = int(snapshot.loaded_at)
    return {
        shown: {"id": shown, "object": "model", "created": created, "owned_by": route.owned_by}
        for name, route in policy.models.items()
        if allowed is None or name in allowed
        for shown in (name, *policy.exact_aliases(name))
    }


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, object]:
    return {"object": "list", "data": list(_model_entries(request).values())}


@router.get("/v1/models/{model_id:path}")
async def retrieve_model(model_id: str, request: Request) -> dict[str, object]:
    entries = _model_entries(request)
    # A name matched by an alias pattern (a dated variant) is served, so it exists for the client too.
    name = request.app.state.proxy.runtime.snapshot.policy.resolve_model(model_id)
    entry = entries.get(model_id) or (entries.get(name) if name is not None else None)
    if entry is None:
        raise ModelNotFound(f"The model `{model_id}` does not exist or you do not have access to it.", param="model")
    return {**entry, "id": model_id}
