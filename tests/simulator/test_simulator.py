"""The simulator's OpenAI endpoints over real HTTP, driven by the official ``openai`` SDK."""

from __future__ import annotations

import json

import aiohttp
import jsonschema
import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.simulator.server import SimulatorServer

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
async def sim():
    async with SimulatorServer(ttft_ms=0, models=["sim-small", "sim-large"]) as server:
        yield server


@pytest.fixture
async def client(sim):
    async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0) as c:
        yield c


async def test_chat_completion_has_openai_shape(client):
    reply = await client.chat.completions.create(model="qwen-72b", messages=HELLO)

    assert isinstance(reply, ChatCompletion)
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.model == "qwen-72b"
    assert reply.system_fingerprint
    [choice] = reply.choices
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.refusal is None
    assert choice.message.content.startswith("Simulated answer from qwen-72b:")
    assert reply.usage.completion_tokens == len(choice.message.content.split()) == 16
    assert reply.usage.prompt_tokens == 3  # len("Hello there") / 4, rounded up
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_answers_are_deterministic_per_input_and_seed(client):
    async def content(**kw):
        reply = await client.chat.completions.create(model="m", **kw)
        return reply.choices[0].message.content

    first = await content(messages=HELLO, seed=7)
    assert await content(messages=HELLO, seed=7) == first
    assert await content(messages=HELLO, seed=8) != first
    assert await content(messages=[{"role": "user", "content": "Other"}], seed=7) != first


async def test_stream_chunks_follow_openai_sequence(client, sim):
    full = await client.chat.completions.create(model="m", messages=HELLO)
    stream = await client.chat.completions.create(
        model="m", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert all(isinstance(c, ChatCompletionChunk) and c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == full.usage.total_tokens
    assert all(c.usage is None for c in chunks[:-1])


async def test_raw_stream_ends_with_done_and_omits_usage_unless_asked(sim):
    body = {"model": "m", "messages": HELLO, "stream": True}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim.openai_base_url}/chat/completions", json=body) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            raw = await resp.read()
    events = raw.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    assert all(e.startswith(b"data: ") for e in events[:-1])
    assert all("usage" not in json.loads(e[6:]) for e in events[:-2])

    body["stream_options"] = {"include_usage": True}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim.openai_base_url}/chat/completions", json=body) as resp:
            chunks = [json.loads(e[6:]) for e in (await resp.read()).split(b"\n\n")[:-2]]
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])  # explicit nulls, as OpenAI sends
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 16


async def test_n_choices_each_indexed_in_full_and_streamed(client):
    reply = await client.chat.completions.create(model="m", messages=HELLO, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) == 3

    stream = await client.chat.completions.create(model="m", messages=HELLO, n=3, stream=True)
    texts = {0: "", 1: "", 2: ""}
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert [texts[i] for i in range(3)] == [c.message.content for c in reply.choices]


async def test_tools_answer_with_calls_built_from_the_schema(client):
    reply = await client.chat.completions.create(model="m", messages=HELLO, tools=[WEATHER_TOOL, TIME_TOOL])

    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert all(c.id.startswith("call_") and c.type == "function" for c in calls)
    arguments = json.loads(calls[0].function.arguments)
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])
    assert arguments["city"] and 1 <= arguments["days"] <= 7


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"tool_choice": "none"}, None),
        ({"parallel_tool_calls": False}, ["get_weather"]),
        ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, ["get_time"]),
        ({"tool_choice": "required"}, ["get_weather", "get_time"]),
    ],
)
async def test_tool_choice_variants(client, extra, expected):
    reply = await client.chat.completions.create(
        model="m", messages=HELLO, tools=[WEATHER_TOOL, TIME_TOOL], **extra
    )
    calls = reply.choices[0].message.tool_calls
    assert ([c.function.name for c in calls] if calls else None) == expected


async def test_after_a_tool_result_the_answer_is_text(client):
    messages = [
        *HELLO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
    ]
    reply = await client.chat.completions.create(model="m", messages=messages, tools=[TIME_TOOL])
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content.startswith("Simulated answer")


async def test_streamed_tool_calls_reassemble(client):
    stream = await client.chat.completions.create(
        model="m", messages=HELLO, tools=[WEATHER_TOOL, TIME_TOOL], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                call["id"], call["name"] = delta.id, delta.function.name
            call["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    jsonschema.validate(json.loads(calls[0]["arguments"]), WEATHER_TOOL["function"]["parameters"])
    assert json.loads(calls[1]["arguments"]) == {}


async def test_json_schema_response_format_yields_a_valid_document(client):
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 12},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "rating": {"type": "number", "minimum": 3, "maximum": 5},
            "author": {"$ref": "#/$defs/person"},
            "published": {"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]},
        },
        "required": ["title", "tags", "rating", "author", "published"],
        "additionalProperties": False,
        "$defs": {
            "person": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
                "required": ["name", "email"],
                "additionalProperties": False,
            }
        },
    }
    reply = await client.chat.completions.create(
        model="m",
        messages=HELLO,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "review", "schema": schema, "strict": True},
        },
    )
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)

    reply = await client.chat.completions.create(
        model="m", messages=HELLO, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


async def test_stop_and_max_tokens_cut_the_answer(client):
    reply = await client.chat.completions.create(model="m", messages=HELLO, stop=["from"])
    assert reply.choices[0].message.content == "Simulated answer "
    assert reply.choices[0].finish_reason == "stop"

    reply = await client.chat.completions.create(model="m", messages=HELLO, max_completion_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 5 == len(reply.choices[0].message.content.split())


async def test_logprobs_cover_every_token(client):
    reply = await client.chat.completions.create(model="m", messages=HELLO, logprobs=True, top_logprobs=3)
    entries = reply.choices[0].logprobs.content
    assert "".join(e.token for e in entries) == reply.choices[0].message.content
    assert all(e.logprob < 0 and len(e.top_logprobs) == 3 for e in entries)
    assert all(bytes(e.bytes).decode() == e.token for e in entries)


async def test_text_completions_full_and_streamed(client):
    reply = await client.completions.create(model="m", prompt=["one", "two"], max_tokens=4)
    assert isinstance(reply, Completion) and reply.object == "text_completion"
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.finish_reason == "length" and c.text == "Simulated answer from m:" for c in reply.choices)

    stream = await client.completions.create(model="m", prompt="one", stream=True)
    chunks = [c async for c in stream]
    assert (
        "".join(c.choices[0].text for c in chunks)
        == (await client.completions.create(model="m", prompt="one")).choices[0].text
    )
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_embeddings_are_deterministic_unit_vectors(client, sim):
    # The SDK asks for base64 by default and decodes it, which also checks our float32 encoding.
    reply = await client.embeddings.create(model="emb", input=["alpha", "beta", "alpha"])
    assert isinstance(reply, CreateEmbeddingResponse)
    vectors = [d.embedding for d in reply.data]
    assert [d.index for d in reply.data] == [0, 1, 2]
    assert len(vectors[0]) == 256
    assert vectors[0] == pytest.approx(vectors[2]) and vectors[0] != pytest.approx(vectors[1])
    assert sum(v * v for v in vectors[1]) == pytest.approx(1.0, rel=1e-5)

    floats = await client.embeddings.create(
        model="emb", input="alpha", encoding_format="float", dimensions=32
    )
    assert len(floats.data[0].embedding) == 32
    assert floats.usage.prompt_tokens == 2

    tokens = await client.embeddings.create(model="emb", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 5


async def test_models_list_and_retrieve(client):
    listed = await client.models.list()
    assert [m.id for m in listed.data] == ["sim-small", "sim-large"]
    assert (await client.models.retrieve("sim-large")).id == "sim-large"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nope")


async def test_paths_work_without_the_v1_prefix_and_health(sim):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim.url}/chat/completions", json={"model": "m", "messages": HELLO}) as resp:
            assert resp.status == 200 and (await resp.json())["object"] == "chat.completion"
        for path in ("/health", "/healthz"):
            async with http.get(sim.url + path) as resp:
                assert resp.status == 200
        async with http.get(f"{sim.url}/v1/nothing-here") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_invalid_requests_get_openai_errors(client, sim):
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="m", messages=[])
    assert info.value.body["param"] == "messages"

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim.openai_base_url}/chat/completions", data=b"{not json") as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
            assert set(error) == {"message", "type", "param", "code"}


async def test_api_key_is_enforced_when_configured():
    async with SimulatorServer(ttft_ms=0, api_key="sk-right") as sim:
        async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-wrong", max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError):
                await wrong.chat.completions.create(model="m", messages=HELLO)
        async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-right", max_retries=0) as right:
            assert (await right.chat.completions.create(model="m", messages=HELLO)).choices
