"""The official SDKs as offline clients: their own stream helpers read a translated stream from bytes.

A transport that answers every request with the given bytes stands in for the network, so what is
checked is exactly what a client of the SDK would see. (The anthropic SDK ships its own httpx fork.)
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import httpx2
import openai
from pydantic import TypeAdapter

ANTHROPIC_EVENT = TypeAdapter(anthropic.types.RawMessageStreamEvent)
RESPONSES_EVENT = TypeAdapter(openai.types.responses.ResponseStreamEvent)
SSE = {"content-type": "text/event-stream"}


def anthropic_client(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> anthropic.Anthropic:
    transport = httpx2.MockTransport(lambda request: httpx2.Response(status, content=body, headers=headers or SSE))
    return anthropic.Anthropic(api_key="test", base_url="http://gateway.test", max_retries=0,
                               http_client=httpx2.Client(transport=transport))


def openai_client(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> openai.OpenAI:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body, headers=headers or SSE))
    return openai.OpenAI(api_key="test", base_url="http://gateway.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=transport))


def anthropic_final_message(stream: bytes) -> anthropic.types.Message:
    """Accumulate a Messages stream with the SDK's ``messages.stream`` helper."""
    client = anthropic_client(stream)
    with client.messages.stream(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]) as events:
        return events.get_final_message()


def responses_final(stream: bytes, tools: list[dict[str, Any]] | None = None) -> Any:
    """Accumulate a Responses stream with the SDK's ``responses.stream`` helper; returns (events, final or None)."""
    client = openai_client(stream)
    with client.responses.stream(model="m", input="x", tools=tools or []) as events:  # type: ignore[arg-type]
        seen = list(events)
        final = events.get_final_response() if seen and seen[-1].type == "response.completed" else None
    return seen, final
