"""The OpenAPI document: every route with its request body, its answers and every error it can return.

FastAPI generates the skeleton from its routes; this module adds what it cannot know: the proxy routes
(served by the ASGI entrance, never by a FastAPI handler), OpenAI's body shapes (``openapi_models``),
streamed answers as ``text/event-stream``, the error envelope under every status a route can answer,
and the bearer authentication. Built once per app, on first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.api import openapi_models as m

_REF = "#/components/schemas/{model}"
_ERROR_WORDS = {
    400: "The request is malformed or no deployment can serve it as asked (`param` names the field).",
    401: "No API key, or an unknown one.",
    403: "The key's team may not use this model, a policy rule denies the request, or the key is not an admin key.",
    404: "Unknown model or URL.",
    408: "The request body did not arrive in time.",
    413: "The request body is larger than the gateway accepts.",
    429: "A rate limit or budget was reached (the `x-ratelimit-*` and `retry-after` headers say when to retry).",
    500: "An internal error of the gateway.",
    502: "The upstream failed or answered something unusable.",
    503: "No deployment is available right now (breakers open, saturated, shared state unavailable).",
    504: "The upstream did not answer in time.",
    529: "No deployment is available right now (Anthropic's overloaded_error).",
}
_PROXIED = (400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504)
_ANTHROPIC = (400, 401, 403, 404, 408, 413, 429, 500, 504, 529)


@dataclass(frozen=True)
class _Operation:
    summary: str
    answer: type[BaseModel] | None
    errors: tuple[int, ...]
    request: type[BaseModel] | None = None
    streams: bool = False
    text: str | None = None  # a plain-text answer's media type
    envelope: type[BaseModel] = m.ErrorEnvelope


_OPERATIONS: dict[tuple[str, str], _Operation] = {
    ("post", "/v1/chat/completions"): _Operation(
        "Create a chat completion, routed by policy", m.ChatCompletion, _PROXIED, m.ChatCompletionRequest, True),
    ("post", "/v1/completions"): _Operation(
        "Create a (legacy) completion, routed by policy", m.Completion, _PROXIED, m.CompletionRequest, True),
    ("post", "/v1/embeddings"): _Operation(
        "Create embeddings, routed by policy", m.EmbeddingList, _PROXIED, m.EmbeddingRequest),
    ("post", "/v1/messages"): _Operation(
        "Create an Anthropic message, routed by policy (natively or translated to chat completions)",
        m.MessagesAnswer, _ANTHROPIC, m.MessagesRequest, True, envelope=m.AnthropicErrorEnvelope),
    ("post", "/v1/messages/count_tokens"): _Operation(
        "Count a Messages request's tokens (the gateway's estimate, no upstream call)", m.CountTokensAnswer,
        (400, 401, 403, 404, 408, 413, 500), m.CountTokensRequest, envelope=m.AnthropicErrorEnvelope),
    ("post", "/v1/responses"): _Operation(
        "Create an OpenAI response, routed by policy (natively or translated to chat completions)",
        m.ResponsesAnswer, _PROXIED, m.ResponsesRequest, True),
    ("get", "/v1/models"): _Operation("The model names the caller's team may use", m.ModelList, (401, 500)),
    ("get", "/v1/models/{model_id}"): _Operation("One model name", m.ModelCard, (401, 404, 500)),
    ("post", "/v1/gateway/explain"): _Operation(
        "The routing decision for a chat completion body, without calling any upstream", m.ExplainAnswer,
        (400, 401, 403, 404, 408, 413, 429, 500, 503), m.ChatCompletionRequest),
    ("post", "/v1/gateway/reload"): _Operation(
        "Reload the policy file now (admin keys); 422 with the file's errors when it is rejected", m.ReloadAnswer,
        (401, 403, 500)),
    ("get", "/v1/gateway/spend"): _Operation(
        "Spend per key, team and deployment for a UTC day or month (admin keys)", m.SpendAnswer,
        (400, 401, 403, 500, 503)),
    ("get", "/v1/gateway/shadow"): _Operation(
        "Shadow evaluation per model, primary and shadow deployment for a UTC day or month (admin keys)",
        m.ShadowAnswer, (400, 401, 403, 500, 503)),
    ("get", "/healthz"): _Operation("Liveness: the process answers", None, (), text="application/json"),
    ("get", "/readyz"): _Operation("Readiness: a policy is loaded and the process is not draining", m.ReadyAnswer, ()),
    ("get", "/metrics"): _Operation("Prometheus metrics (a bearer key when GATEWAY_METRICS_KEY is set)", None,
                                    (401, 403), text="text/plain"),
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=_DESCRIPTION, routes=app.routes)
    _, definitions = models_json_schema(
        [(model, "validation") for model in _models()], ref_template=_REF)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(definitions.get("$defs", {}))
    doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    paths = doc.setdefault("paths", {})
    for (method, path), operation in _OPERATIONS.items():
        item = paths.setdefault(path, {}).setdefault(method, {})
        _describe(item, operation, path)
    return doc


def _describe(item: dict[str, Any], op: _Operation, path: str) -> None:
    item["summary"] = op.summary
    item.setdefault("operationId", op.summary.split(",")[0].lower().replace(" ", "_")[:48] + path.replace("/", "_"))
    if path.startswith("/v1/"):
        item["security"] = [{"bearer": []}, {}]  # a key, or none where the policy defines no keys
    if op.request is not None:
        item["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.request)}}}
    content: dict[str, Any] = {}
    if op.answer is not None:
        content["application/json"] = {"schema": _ref(op.answer)}
    if op.text is not None:
        content[op.text] = {"schema": {"type": "string"} if op.text == "text/plain" else {"type": "object"}}
    if op.streams:
        content["text/event-stream"] = {"schema": {"type": "string", "description": "Server-sent events, one "
                                                   "chunk object per `data:` line, ending with `data: [DONE]`."}}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    if path == "/v1/gateway/reload":
        responses["422"] = {"description": "The policy file was rejected; the last good one stays active.",
                            "content": {"application/json": {"schema": _ref(m.ReloadAnswer)}}}
    if path == "/readyz":
        responses["503"] = {"description": "Not ready (no policy, or draining for shutdown).",
                            "content": {"application/json": {"schema": _ref(m.ReadyAnswer)}}}
    for status in op.errors:
        responses[str(status)] = {"description": _ERROR_WORDS[status],
                                  "content": {"application/json": {"schema": _ref(op.envelope)}}}
    item["responses"] = responses


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _models() -> list[type[BaseModel]]:
    return [m.ErrorEnvelope, m.AnthropicErrorEnvelope, m.MessagesRequest, m.MessagesAnswer, m.CountTokensRequest,
            m.CountTokensAnswer, m.ResponsesRequest, m.ResponsesAnswer, m.ChatCompletionRequest, m.CompletionRequest, m.EmbeddingRequest, m.ChatCompletion,
            m.Completion, m.EmbeddingList, m.ModelList, m.ModelCard, m.ExplainAnswer, m.ReloadAnswer, m.SpendAnswer,
            m.ShadowPair, m.ShadowAnswer, m.ReadyAnswer]


_DESCRIPTION = """An OpenAI-compatible model-routing gateway. Point an OpenAI SDK's `base_url` here: each
request goes to a self-hosted open model or a proprietary API, chosen by policy, cost and measured
latency. Response headers say what happened: `x-gateway-deployment`, `x-gateway-hosting`,
`x-gateway-rule`, `x-gateway-decision-id`, `x-gateway-policy-version`, `x-gateway-fallbacks`,
`x-gateway-cache`, `x-ratelimit-*`. Every error comes in OpenAI's envelope."""
