"""The simulator's Anthropic Messages and Gemini endpoints, over real HTTP with raw requests.

(The ``anthropic`` and ``google-genai`` SDKs are not dependencies; litellm's use of these endpoints is
covered in ``test_simulator_litellm.py``.)
"""

from __future__ import annotations

import json

import aiohttp
import jsonschema
import pytest

from gateway.simulator.server import SimulatorServer

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 2}},
    "required": ["city", "days"],
}


@pytest.fixture
async def sim():
    async with SimulatorServer(ttft_ms=0) as server:
        yield server


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def parse_named_events(raw: bytes) -> list[tuple[str, dict]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        events.append((name_line[7:], json.loads(data_line[6:])))
    return events


async def messages(http, sim, body, headers=None):
    headers = {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01", **(headers or {})}
    async with http.post(f"{sim.url}/v1/messages", json=body, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


ANTHROPIC_BODY = {
    "model": "claude-3-5-sonnet-20240620",
    "max_tokens": 100,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}],
}


async def test_anthropic_message_shape(sim, http):
    status, _, raw = await messages(http, sim, ANTHROPIC_BODY)
    assert status == 200
    message = json.loads(raw)
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["id"].startswith("msg_")
    assert message["model"] == "claude-3-5-sonnet-20240620"
    [block] = message["content"]
    assert block["type"] == "text" and block["text"].startswith("Simulated answer from claude")
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None
    assert message["usage"]["output_tokens"] == 16
    assert message["usage"]["input_tokens"] == 6  # "Be brief.\nHello there" is 21 chars


async def test_anthropic_stream_event_sequence(sim, http):
    _, _, full = await messages(http, sim, ANTHROPIC_BODY)
    status, headers, raw = await messages(http, sim, {**ANTHROPIC_BODY, "stream": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = parse_named_events(raw)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert all(data["type"] == name for name, data in events)
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == json.loads(full)["content"][0]["text"]
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] == 16


async def test_anthropic_tool_use_full_and_streamed(sim, http):
    body = {**ANTHROPIC_BODY, "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]}
    _, _, raw = await messages(http, sim, body)
    message = json.loads(raw)
    assert message["stop_reason"] == "tool_use"
    [block] = message["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_") and block["name"] == "get_weather"
    jsonschema.validate(block["input"], WEATHER_SCHEMA)

    _, _, raw = await messages(http, sim, {**body, "stream": True})
    events = parse_named_events(raw)
    start = next(data for name, data in events if name == "content_block_start")
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["input"] == {}
    partial = "".join(data["delta"]["partial_json"] for name, data in events if name == "content_block_delta")
    assert json.loads(partial) == block["input"]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_anthropic_tool_result_gets_a_text_answer(sim, http):
    body = {
        **ANTHROPIC_BODY,
        "tools": [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}],
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny"}],
            },
        ],
    }
    _, _, raw = await messages(http, sim, body)
    assert json.loads(raw)["content"][0]["type"] == "text"


async def test_anthropic_stop_sequences_and_max_tokens(sim, http):
    _, _, raw = await messages(http, sim, {**ANTHROPIC_BODY, "stop_sequences": ["answer"]})
    message = json.loads(raw)
    assert message["stop_reason"] == "stop_sequence" and message["stop_sequence"] == "answer"
    assert message["content"][0]["text"] == "Simulated "

    _, _, raw = await messages(http, sim, {**ANTHROPIC_BODY, "max_tokens": 3})
    message = json.loads(raw)
    assert message["stop_reason"] == "max_tokens" and message["usage"]["output_tokens"] == 3


async def test_anthropic_errors_use_its_shape(sim, http):
    status, headers, raw = await messages(
        http, sim, ANTHROPIC_BODY, {"x-sim-fault": "status=429;retry_after=3"}
    )
    assert status == 429 and headers["retry-after"] == "3"
    assert json.loads(raw)["type"] == "error"
    assert json.loads(raw)["error"]["type"] == "rate_limit_error"

    status, _, raw = await messages(http, sim, {k: v for k, v in ANTHROPIC_BODY.items() if k != "max_tokens"})
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"


GEMINI_BODY = {
    "system_instruction": {"parts": [{"text": "Be brief."}]},
    "contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
    "generationConfig": {"maxOutputTokens": 100},
}


async def gemini(http, sim, action, body, model="gemini-1.5-flash", query="", prefix="/v1beta"):
    url = f"{sim.url}{prefix}/models/{model}:{action}{query}"
    async with http.post(url, json=body, headers={"x-goog-api-key": "g-key"}) as resp:
        return resp.status, await resp.read()


async def test_gemini_generate_content_shape(sim, http):
    status, raw = await gemini(http, sim, "generateContent", GEMINI_BODY)
    assert status == 200
    reply = json.loads(raw)
    [candidate] = reply["candidates"]
    assert candidate["content"]["role"] == "model" and candidate["finishReason"] == "STOP"
    assert candidate["content"]["parts"][0]["text"].startswith("Simulated answer from gemini-1.5-flash:")
    usage = reply["usageMetadata"]
    assert usage["candidatesTokenCount"] == 16
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 16
    assert reply["modelVersion"] == "gemini-1.5-flash"


async def test_gemini_stream_and_unprefixed_path(sim, http):
    _, full = await gemini(http, sim, "generateContent", GEMINI_BODY, prefix="")
    status, raw = await gemini(http, sim, "streamGenerateContent", GEMINI_BODY, query="?alt=sse")
    assert status == 200
    chunks = [json.loads(e[6:]) for e in raw.split(b"\n\n") if e]
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == json.loads(full)["candidates"][0]["content"]["parts"][0]["text"]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 16


async def test_gemini_function_calls_and_json_schema(sim, http):
    body = {
        **GEMINI_BODY,
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": WEATHER_SCHEMA}]}],
    }
    _, raw = await gemini(http, sim, "generateContent", body)
    [part] = json.loads(raw)["candidates"][0]["content"]["parts"]
    assert part["functionCall"]["name"] == "get_weather"
    jsonschema.validate(part["functionCall"]["args"], WEATHER_SCHEMA)

    body = {**GEMINI_BODY, "tools": body["tools"], "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}
    _, raw = await gemini(http, sim, "generateContent", body)
    assert "text" in json.loads(raw)["candidates"][0]["content"]["parts"][0]

    config = {"response_mime_type": "application/json", "response_schema": WEATHER_SCHEMA}
    _, raw = await gemini(http, sim, "generateContent", {**GEMINI_BODY, "generationConfig": config})
    jsonschema.validate(
        json.loads(json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"]), WEATHER_SCHEMA
    )


async def test_gemini_errors_use_google_shape(sim, http):
    status, raw = await gemini(http, sim, "generateContent", GEMINI_BODY, model="gemini-error-503")
    assert status == 503
    assert json.loads(raw)["error"] | {"message": ""} == {"code": 503, "message": "", "status": "UNAVAILABLE"}
