"""End to end: the official openai SDK → the gateway (real server on loopback) → the HTTP simulator."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI


@pytest.fixture(scope="module")
def client(e2e_gateway: str) -> OpenAI:
    return OpenAI(base_url=f"{e2e_gateway}/v1", api_key="unused", max_retries=0, timeout=20)


@pytest.fixture
async def aclient(e2e_gateway: str) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=f"{e2e_gateway}/v1", api_key="unused", max_retries=0, timeout=20) as client:
        yield client


def sim_last(sim_url: str, model: str) -> dict:
    return httpx.get(f"{sim_url}/sim/stats").json()["last_request"][model]


MESSAGES = [{"role": "user", "content": "Say hello to the gateway."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}},
}


def test_models_list_and_retrieve(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert {"auto", "gpt-4o", "text-embedding-3-small"} <= set(ids)
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("no-such-model")
    assert err.value.body["code"] == "model_not_found"


def test_chat_non_streaming_with_route_headers(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.usage and completion.usage.completion_tokens > 0
    assert raw.headers["x-gateway-deployment"] == "self-qwen"  # cost objective: the self-hosted model
    assert raw.headers["x-gateway-hosting"] == "self"
    assert raw.headers["x-gateway-decision-id"]


def test_chat_streaming_passes_events_through(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Simulated answer from gpt-4o")
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks), "usage chunk must be dropped when the client did not ask for it"


def test_stream_include_usage(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="auto", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + chunks[-1].usage.completion_tokens


def test_tools_parallel_calls(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Weather and time in Paris?"}],
        tools=[WEATHER_TOOL, TIME_TOOL], tool_choice="auto")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert "city" in json.loads(calls[0].function.arguments)


def test_tools_streamed(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER_TOOL], stream=True)
    args = ""
    name = None
    for chunk in stream:
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name = delta_call.function.name or name
            args += delta_call.function.arguments or ""
    assert name == "get_weather" and "city" in json.loads(args)


def test_json_schema_and_sampling_params_are_forwarded(client: OpenAI, sim_url: str) -> None:
    schema = {"name": "person", "strict": True, "schema": {
        "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"], "additionalProperties": False}}
    completion = client.chat.completions.create(
        model="auto", messages=MESSAGES, response_format={"type": "json_schema", "json_schema": schema},
        n=2, seed=7, stop=["\n\n"], max_completion_tokens=50, temperature=0, logprobs=True, top_logprobs=2,
        extra_body={"repetition_penalty": 1.1, "guided_decoding_backend": "xgrammar"})
    assert len(completion.choices) == 2 and {c.index for c in completion.choices} == {0, 1}
    doc = json.loads(completion.choices[0].message.content)
    assert set(doc) == {"name", "age"} and isinstance(doc["age"], int)
    assert completion.choices[0].logprobs is not None
    sent = sim_last(sim_url, "qwen2.5-7b-instruct")["body"]
    # Unknown fields are kept and forwarded; known ones unchanged; the model is the upstream's id.
    assert sent["repetition_penalty"] == 1.1 and sent["guided_decoding_backend"] == "xgrammar"
    assert sent["seed"] == 7 and sent["n"] == 2 and sent["max_completion_tokens"] == 50
    assert sent["model"] == "qwen2.5-7b-instruct"


def test_max_tokens_legacy_field(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3


def test_vision_goes_to_capable_deployment(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    assert raw.headers["x-gateway-deployment"] == "vendor-gpt"


def test_legacy_completions(client: OpenAI) -> None:
    completion = client.completions.create(model="auto", prompt="Once upon a time", max_tokens=5)
    assert completion.object == "text_completion" and completion.choices[0].text
    streamed = list(client.completions.create(model="auto", prompt="Once", max_tokens=5, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices)


def test_embeddings_float_and_base64(client: OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], encoding_format="float")
    assert len(result.data) == 2 and len(result.data[0].embedding) > 8
    # The SDK's default asks for base64 and decodes it itself.
    default = client.embeddings.create(model="text-embedding-3-small", input="alpha")
    assert default.data[0].embedding == pytest.approx(result.data[0].embedding, rel=1e-6)
    raw = httpx.post(f"{client.base_url}embeddings", json={"model": "text-embedding-3-small", "input": "alpha",
                                                           "encoding_format": "base64"}).json()
    assert base64.b64decode(raw["data"][0]["embedding"])


async def test_async_client_streaming_and_not(aclient: AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content
    stream = await aclient.chat.completions.create(model="auto", messages=MESSAGES, stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts).startswith("Simulated answer")


def test_fallback_to_next_target(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="fallback-demo", messages=MESSAGES)
    assert raw.headers["x-gateway-deployment"] == "self-qwen"
    assert raw.headers["x-gateway-fallbacks"] == "broken:UpstreamUnavailable"
    assert raw.parse().choices[0].message.content


# --- errors, in OpenAI's shape, with the right status, before any upstream is called ----------------

@pytest.mark.parametrize("body, status, param", [
    ({"model": "auto", "messages": []}, 400, "messages"),
    ({"model": "auto"}, 400, "messages"),
    ({"model": "auto", "messages": [{"content": "hi"}]}, 400, "messages[0].role"),
    ({"model": "auto", "messages": "hi"}, 400, "messages"),
    ({"model": "auto", "messages": MESSAGES, "max_tokens": -1}, 400, "max_tokens"),
    ({"model": "auto", "messages": MESSAGES, "max_completion_tokens": 0}, 400, "max_completion_tokens"),
    ({"model": "auto", "messages": MESSAGES, "temperature": "hot"}, 400, "temperature"),
    ({"model": "auto", "messages": MESSAGES, "n": 1.5}, 400, "n"),
    ({"model": "auto", "messages": MESSAGES, "stream": "yes"}, 400, "stream"),
    ({"model": 42, "messages": MESSAGES}, 400, "model"),
    ({"messages": MESSAGES}, 400, "model"),
    ({"model": "no-such-model", "messages": MESSAGES}, 404, "model"),
])
def test_invalid_requests(e2e_gateway: str, body: dict, status: int, param: str) -> None:
    resp = httpx.post(f"{e2e_gateway}/v1/chat/completions", json=body)
    assert resp.status_code == status
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]


def test_sdk_raises_typed_errors(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="auto", messages=[])
    assert err.value.param == "messages"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MESSAGES)


def test_malformed_json(e2e_gateway: str) -> None:
    resp = httpx.post(f"{e2e_gateway}/v1/chat/completions", content=b'{"model": "auto", "messages": [',
                      headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert "could not parse the JSON body" in resp.json()["error"]["message"]
    resp = httpx.post(f"{e2e_gateway}/v1/chat/completions", content=b"[1, 2]")
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"


def test_body_over_limit(e2e_gateway: str) -> None:
    big = [{"role": "user", "content": "x" * 70_000}]
    resp = httpx.post(f"{e2e_gateway}/v1/chat/completions", json={"model": "auto", "messages": big})
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"


def test_unknown_route_and_method(e2e_gateway: str) -> None:
    resp = httpx.get(f"{e2e_gateway}/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "invalid_request_error"
    resp = httpx.get(f"{e2e_gateway}/v1/chat/completions")
    assert resp.status_code == 405 and "error" in resp.json()


def test_upstream_rate_limit_passed_on_with_retry_after(client: OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="only-ratelimited", messages=MESSAGES)
    assert err.value.response.headers["retry-after"] == "1"


def test_upstream_unavailable_is_503(client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="only-broken", messages=MESSAGES)
    assert err.value.status_code == 503
    assert err.value.body["code"] == "upstream_unavailable"


def test_first_byte_timeout_is_504(client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(model="only-hanging", messages=MESSAGES)
    assert err.value.status_code == 504 and err.value.body["type"] == "timeout_error"


def test_mid_stream_failure_ends_with_error_event(client: OpenAI) -> None:
    stream = client.chat.completions.create(model="truncating", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            received.append(chunk)
    assert received, "events before the failure reach the client"
    assert "before [DONE]" in str(err.value.message)


def test_vendor_key_never_leaks(e2e_gateway: str, client: OpenAI) -> None:
    for model in ("gpt-4o", "only-broken", "no-such-model"):
        resp = httpx.post(f"{e2e_gateway}/v1/chat/completions", json={"model": model, "messages": MESSAGES})
        assert "sk-vendor-secret" not in resp.text
        assert "sk-vendor-secret" not in json.dumps(dict(resp.headers))


def test_langchain_openai(e2e_gateway: str) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{e2e_gateway}/v1", api_key="unused", model="auto", max_tokens=8, max_retries=0)
    answer = llm.invoke("Hello from LangChain")
    assert answer.content.startswith("Simulated answer")
    assert answer.response_metadata["token_usage"]["completion_tokens"] <= 8
