"""Helpers for the shadow tests (no tests here): an in-process gateway whose access-log lines are kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.inprocess import gateway_client

ADMIN = "sk-admin-shadow-0123456789"
TOOL_INT = {"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
TOOL_STR = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
SCHEMA_STR = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}
SCHEMA_NUM = {"type": "object", "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 1}},
              "required": ["stars"], "additionalProperties": False}


def chat(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def json_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


@dataclass
class Harness:
    client: httpx.AsyncClient
    api: Any
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def shadows(self) -> Any:
        return self.api.state.shadows

    async def settle(self) -> None:
        """Every shadow offered so far finished and its counters written (a hang fails the test)."""
        async with asyncio.timeout(20):
            await self.shadows.drain()
            await self.api.state.state.shadows.drain()

    async def report(self, model: str | None = None, period: str = "day") -> dict[str, Any]:
        params = {"period": period, **({"model": model} if model else {})}
        resp = await self.client.get("/v1/gateway/shadow", params=params, headers={"authorization": f"Bearer {ADMIN}"})
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def pair(self, model: str) -> dict[str, Any]:
        pairs = (await self.report(model))["pairs"]
        assert len(pairs) == 1, pairs
        return pairs[0]

    def shadow_lines(self, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.lines if e.get("event") == "shadow" and all(e.get(k) == v for k, v in match.items())]

    def request_lines(self) -> list[dict[str, Any]]:
        return [e for e in self.lines if e.get("event") != "shadow"]

    def ledger(self, deployment: str) -> dict[str, Any]:
        return self.api.state.runtime.context.shared["simulators"][deployment].ledger.snapshot()

    async def metrics(self) -> str:
        return (await self.client.get("/metrics")).text


@contextlib.asynccontextmanager
async def shadow_gateway(tmp_path: Path, policy_text: str, **settings: Any) -> AsyncIterator[Harness]:
    async with gateway_client("", policy_text=policy_text, tmp_path=tmp_path, access_log=True, admin_key=ADMIN,
                              **settings) as client:
        api = client.gateway_api  # type: ignore[attr-defined]
        harness = Harness(client, api)
        api.state.proxy.accounting.access_log.write = harness.lines.append  # the request lines and the shadows'
        yield harness
