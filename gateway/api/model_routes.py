"""The model list of OpenAI's API: the model names of the policy that the caller's team may use.

The proxy routes themselves (chat, completions, embeddings) have one entrance only, ``entrance.py``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.api.headers import header_map
from gateway.core.errors import ModelNotFound
from gateway.pipeline.auth import authenticate
from gateway.pipeline.service import ProxyService

router = APIRouter()


def _model_entries(request: Request) -> dict[str, dict[str, object]]:
    service: ProxyService = request.app.state.proxy
    snapshot = service.runtime.snapshot
    identity = authenticate(snapshot, header_map(request.scope["headers"]).get("authorization"), service.admin_key)
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
