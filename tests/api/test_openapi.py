"""The OpenAPI document describes every route, its bodies and its errors — and the gateway answers as it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.api import openapi_models as m
from tests.inprocess import gateway_client

POLICY = """
deployments:
  sim: {type: simulator, model: m, hosting: self, params: {output_tokens: 4}}
  emb: {type: simulator, model: e, hosting: self, endpoints: [embeddings], capabilities: [embeddings]}
models:
  m: {deployments: [sim]}
  e: {deployments: [emb]}
"""
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def test_every_route_is_documented_with_its_bodies_and_errors(tmp_path: Path) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        doc = (await gw.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/v1/models/{model_id}",
                 "/v1/gateway/explain", "/v1/gateway/reload", "/v1/gateway/spend", "/healthz", "/readyz", "/metrics",
                 "/v1/messages", "/v1/messages/count_tokens", "/v1/responses"):
        assert path in paths, path
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/gateway/explain"):
        operation = paths[path]["post"]
        assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        for status in ("400", "401", "404", "413", "429", "503"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (path, status)
    assert "text/event-stream" in paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    anthropic_error = paths["/v1/messages"]["post"]["responses"]["529"]["content"]["application/json"]["schema"]
    assert anthropic_error == {"$ref": "#/components/schemas/AnthropicErrorEnvelope"}
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    spend_params = {p["name"] for p in paths["/v1/gateway/spend"]["get"]["parameters"]}
    assert spend_params == {"period", "date"}


@pytest.mark.parametrize(("method", "path", "body", "model"), [
    ("POST", "/v1/chat/completions", CHAT, m.ChatCompletion),
    ("POST", "/v1/completions", {"model": "m", "prompt": "once"}, m.Completion),
    ("POST", "/v1/embeddings", {"model": "e", "input": ["a", "b"]}, m.EmbeddingList),
    ("GET", "/v1/models", None, m.ModelList),
    ("GET", "/v1/models/m", None, m.ModelCard),
    ("POST", "/v1/gateway/explain", CHAT, m.ExplainAnswer),
    ("GET", "/readyz", None, m.ReadyAnswer),
    ("POST", "/v1/chat/completions", {"model": "nope", "messages": []}, m.ErrorEnvelope),
    ("POST", "/v1/embeddings", {"model": "e"}, m.ErrorEnvelope),
    ("GET", "/v1/models/nope", None, m.ErrorEnvelope),
    ("GET", "/v1/gateway/spend", None, m.ErrorEnvelope),
])
async def test_answers_match_the_documented_shapes(tmp_path: Path, method: str, path: str, body: object,
                                                    model: type[m.BaseModel]) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        resp = await gw.request(method, path, json=body)
        model.model_validate(resp.json())
