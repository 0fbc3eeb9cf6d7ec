"""Client input that used to reach a 500: every one is a 400 in OpenAI's envelope naming what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.inprocess import gateway_client

POLICY = """
deployments:
  sim: {type: simulator, model: m, hosting: self, params: {output_tokens: 3}}
  emb: {type: simulator, model: e, hosting: self, endpoints: [embeddings], capabilities: [embeddings]}
models:
  m: {deployments: [sim]}
  e: {deployments: [emb]}
"""
USER = [{"role": "user", "content": "hi"}]


def nested(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


CHAT_CASES: list[tuple[dict[str, Any], str | None]] = [
    ({"messages": [{"role": [], "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": {}, "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [[]]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": []}]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": "x", "name": ["a"]}]}, "messages[0].name"),
    ({"messages": USER, "tool_choice": []}, "tool_choice"),
    ({"messages": USER, "tool_choice": {}}, None),  # an object is OpenAI's shape; upstream judges its content
    ({"messages": USER, "response_format": {"type": []}}, "response_format.type"),
    ({"messages": USER, "response_format": {"type": {"a": 1}}}, "response_format.type"),
    ({"messages": USER, "max_tokens": 9223372036854775807}, "max_tokens"),
    ({"messages": USER, "max_completion_tokens": 2**40}, "max_completion_tokens"),
    ({"messages": USER, "seed": 2**70}, "seed"),
    ({"messages": USER, "metadata": nested(300)}, None),
    ({"messages": USER, "x_unknown": nested(80)}, None),
    ({"messages": [{"role": "user", "content": "x", "extra": nested(200)}]}, None),
]


@pytest.mark.parametrize(("fields", "param"), CHAT_CASES)
async def test_malformed_chat_bodies_are_400s(tmp_path: Path, fields: dict[str, Any], param: str | None) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        resp = await gw.post("/v1/chat/completions", json={"model": "m", **fields})
        assert resp.status_code == (200 if fields.get("tool_choice") == {} else 400), resp.text
        if resp.status_code == 400:
            error = resp.json()["error"]
            assert error["type"] == "invalid_request_error"
            if param is not None:
                assert error["param"] == param


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/completions", {"model": "m", "prompt": nested(300)}),
    ("/v1/completions", {"model": "m", "prompt": [["a", ["b"]]]}),
    ("/v1/completions", {"model": "m", "prompt": [1, "a"]}),
    ("/v1/embeddings", {"model": "e", "input": nested(500)}),
    ("/v1/embeddings", {"model": "e", "input": ["a", 1]}),
    ("/v1/gateway/explain", {"model": "m", "messages": USER, "tools": nested(250)}),
])
async def test_malformed_bodies_on_every_endpoint_are_400s(tmp_path: Path, path: str, body: dict[str, Any]) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        resp = await gw.post(path, json=body)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["type"] == "invalid_request_error"


async def test_a_body_nested_past_the_parser_limit_is_a_400(tmp_path: Path) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        raw = b'{"model":"m","messages":' + b"[" * 5000 + b"]" * 5000 + b"}"
        resp = await gw.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
        assert resp.status_code == 400


async def test_nesting_within_the_bound_still_works(tmp_path: Path) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        body = {"model": "m", "messages": USER, "metadata": {"deep": "no"}, "x_schema": nested(40)}
        assert (await gw.post("/v1/chat/completions", json=body)).status_code == 200
