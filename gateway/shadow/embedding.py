"""Text similarity by embeddings: both answers embedded in one call to the policy's embedding deployment
(``defaults.shadow.embedding_deployment``), compared by cosine.

The embedding deployment receives both answers' text, so it is held to the request's hard requirements
like any target: a request that must stay self-hosted is never embedded by a vendor (its texts are then
compared by token F1). The call is a shadow call (``call.send``): dropped when the embedder is busy or
unhealthy, never retried. Texts are cut to their first ``MAX_CHARS`` characters.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from gateway.core.errors import GatewayError
from gateway.core.hooks import ExecutorHooks
from gateway.core.types import Endpoint
from gateway.policy.conditions import Requirement
from gateway.policy.models import Deployment
from gateway.policy.prices import request_cost
from gateway.providers.base import UpstreamCall
from gateway.routing.conditions import unmet_requirement
from gateway.routing.runtime import PolicySnapshot, Runtime
from gateway.shadow.call import Dropped, send
from gateway.shadow.similarity import cosine

MAX_CHARS = 8000


@dataclass(frozen=True, slots=True)
class Embedded:
    cosine: float | None
    """``None`` when the embedder could not be used (dropped, failed, or barred by the requirements)."""
    cost_usd: float = 0.0
    deployment: str = ""


def embedder_for(snapshot: PolicySnapshot, required: dict[str, object]) -> Deployment | None:
    """The policy's embedding deployment, if it meets the request's hard requirements."""
    name = snapshot.policy.defaults.shadow.embedding_deployment
    if name is None:
        return None
    dep = snapshot.policy.deployments[name]
    if required and unmet_requirement(Requirement.model_validate(required), dep) is not None:
        return None
    return dep


async def embedding_cosine(primary: str, shadow: str, dep: Deployment, snapshot: PolicySnapshot, runtime: Runtime,
                           hooks: ExecutorHooks, request_id: str) -> Embedded:
    body = {"model": dep.model, "input": [primary[:MAX_CHARS] or " ", shadow[:MAX_CHARS] or " "]}
    call = UpstreamCall(Endpoint.EMBEDDINGS, body, False, f"{request_id}:shadow-embedding")
    try:
        sent = await send(dep, snapshot.providers[dep.name], call, runtime, hooks)
    except (Dropped, GatewayError):
        return Embedded(None)
    reply = sent.reply
    cost = request_cost(dep, reply.usage.prompt_tokens, 0) if reply.usage is not None else 0.0
    try:
        parsed = reply.parsed if reply.parsed is not None else orjson.loads(reply.body)
        rows = sorted(parsed["data"], key=lambda row: row.get("index", 0))
        a, b = rows[0]["embedding"], rows[1]["embedding"]
        value = cosine([float(x) for x in a], [float(x) for x in b])
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError):
        value = None
    return Embedded(value, cost, dep.name)
