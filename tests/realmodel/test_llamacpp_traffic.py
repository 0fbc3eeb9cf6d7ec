"""The gateway in front of a real llama-server: chat, streams with and without usage, completions, tool
calls, concurrent traffic, accounting against what the server itself counted, and the cache replaying a
real stream. Generations are short (the tier's wall time counts)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.realmodel.llama import LlamaServer
from tests.realmodel.support import access_entry, self_cost

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Name three colours."}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def client(gateway: str) -> OpenAI:
    return OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0, timeout=180)


def predicted(llama: LlamaServer) -> float:
    return llama.metrics()["llamacpp:tokens_predicted_total"]


def test_chat_is_answered_and_its_usage_accounted_and_priced(client: OpenAI, llama: LlamaServer,
                                                            gateway_log: Path) -> None:
    before = predicted(llama)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=QUESTION, max_tokens=24)
    completion = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "smollm" and raw.headers["x-gateway-hosting"] == "self"
    assert completion.choices[0].message.content
    assert completion.model == "smollm2-135m-instruct", "the server names its model, not its file"
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 24
    assert predicted(llama) - before == usage.completion_tokens, "the server generated what it reported"
    entry = access_entry(gateway_log, raw.headers["x-request-id"])
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert entry["cost_usd"] == pytest.approx(self_cost(usage.prompt_tokens, usage.completion_tokens))


def test_stream_with_usage_reports_and_accounts_the_servers_count(client: OpenAI, llama: LlamaServer,
                                                                 gateway_log: Path) -> None:
    before = predicted(llama)
    raw = client.chat.completions.with_raw_response.create(
        model="smollm", messages=QUESTION, max_tokens=16, stream=True, stream_options={"include_usage": True})
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert text and usage is not None and not chunks[-1].choices
    assert all(c.usage is None for c in chunks[:-1])
    assert predicted(llama) - before == usage.completion_tokens
    entry = access_entry(gateway_log, raw.headers["x-request-id"])
    assert (entry["prompt_tokens"], entry["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert entry["cost_usd"] == pytest.approx(self_cost(usage.prompt_tokens, usage.completion_tokens))
    assert entry["ttft_ms"] > 0


def test_stream_without_usage_is_still_accounted(client: OpenAI, llama: LlamaServer, gateway_log: Path) -> None:
    """The gateway asks the server for usage anyway, accounts it, and drops it from what the client gets."""
    before = predicted(llama)
    raw = client.chat.completions.with_raw_response.create(model="smollm", messages=QUESTION, max_tokens=16,
                                                           stream=True)
    chunks = list(raw.parse())
    assert chunks and all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    generated = predicted(llama) - before
    entry = access_entry(gateway_log, raw.headers["x-request-id"])
    assert entry["completion_tokens"] == generated > 0
    assert entry["cost_usd"] == pytest.approx(self_cost(entry["prompt_tokens"], entry["completion_tokens"]))


def test_completions_plain_and_streamed(client: OpenAI, gateway_log: Path) -> None:
    raw = client.completions.with_raw_response.create(model="smollm", prompt="Once upon a time", max_tokens=12)
    completion = raw.parse()
    assert completion.object == "text_completion" and completion.choices[0].text
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert access_entry(gateway_log, raw.headers["x-request-id"])["completion_tokens"] == completion.usage.completion_tokens
    streamed = list(client.completions.create(model="smollm", prompt="The sky is", max_tokens=8, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in streamed if c.choices)
    assert streamed[-1].usage is not None and streamed[-1].usage.completion_tokens > 0


def test_a_tool_call_the_model_may_or_may_not_make_reaches_the_client_intact(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="smollm", max_tokens=64, tools=[WEATHER],
        messages=[{"role": "user", "content": "What is the weather in Paris? Use the tool."}])
    choice = completion.choices[0]
    if choice.message.tool_calls:
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
        assert choice.finish_reason == "tool_calls"
    else:
        assert choice.message.content is not None and choice.finish_reason in ("stop", "length")


def test_a_streamed_tool_request_comes_back_as_calls_or_text(client: OpenAI) -> None:
    """SmolLM2's chat template has no tool syntax, so llama-server may answer in prose even when told
    ``tool_choice: required``: either way the stream reaches the SDK whole and parses."""
    chunks = list(client.chat.completions.create(
        model="smollm", max_tokens=32, tools=[WEATHER], tool_choice="required", stream=True,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}]))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    if calls:
        assert "".join(tc.function.name or "" for tc in calls if tc.function) == "get_weather"
        assert isinstance(json.loads("".join(tc.function.arguments or "" for tc in calls if tc.function)), dict)
        assert finish == ["tool_calls"]
    else:
        assert "".join(d.content or "" for d in deltas) and finish in (["stop"], ["length"])


async def test_concurrent_traffic_all_answered(gateway: str, gateway_log: Path) -> None:
    client = AsyncOpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0, timeout=180)
    try:
        raws = await asyncio.gather(*(
            client.chat.completions.with_raw_response.create(
                model="auto", max_tokens=12, messages=[{"role": "user", "content": f"Say a word about {n}."}])
            for n in ("cats", "dogs", "trees", "rivers", "stars", "bread")))
    finally:
        await client.close()
    for raw in raws:
        usage = raw.parse().usage
        assert raw.headers["x-gateway-deployment"] == "smollm" and usage is not None
        assert access_entry(gateway_log, raw.headers["x-request-id"])["completion_tokens"] == usage.completion_tokens


def test_the_cache_replays_a_real_stream(gateway: str, client: OpenAI, llama: LlamaServer) -> None:
    request = {"model": "cached", "messages": [{"role": "user", "content": "Count to five."}], "max_tokens": 16,
               "temperature": 0, "seed": 7, "stream": True}

    def run() -> tuple[str, list[dict], str | None]:
        with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=request, timeout=180) as resp:
            assert resp.status_code == 200
            events = [json.loads(line[6:]) for line in resp.iter_lines()
                      if line.startswith("data: ") and line != "data: [DONE]"]
            return resp.headers.get("x-gateway-cache"), events, resp.headers.get("x-gateway-deployment")

    first_cache, first, served = run()
    assert first_cache == "miss" and served == "smollm"
    before = predicted(llama)
    second_cache, second, _ = run()
    assert second_cache == "hit"
    assert predicted(llama) == before, "the replay did not reach the server"

    def content(events: list[dict]) -> tuple[str, list[str | None]]:
        text = "".join((e["choices"][0]["delta"].get("content") or "") for e in events if e.get("choices"))
        finish = [e["choices"][0].get("finish_reason") for e in events if e.get("choices")]
        return text, [f for f in finish if f]

    assert content(second) == content(first) and content(first)[0]
    assert {e["id"] for e in second} == {first[0]["id"]}, "the replay keeps the completion's id"
