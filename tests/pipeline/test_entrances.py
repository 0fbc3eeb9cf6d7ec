"""Anthropic Messages and OpenAI Responses clients through the gateway, to every kind of upstream.

The official ``anthropic`` and ``openai`` SDKs talk to a real gateway process. Every upstream is the HTTP
simulator: as a self-hosted vLLM chat server (requests translated to chat completions and answers back),
as an Anthropic deployment and as an OpenAI deployment speaking Messages and Responses natively (passed
through untouched). Routing, headers, accounting and the cache apply as to chat.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests import servers

POLICY = Path(__file__).resolve().parents[1] / "policies" / "entrances.yaml"
WEATHER = {"name": "get_weather", "description": "Weather of a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
RESPONSES_WEATHER = {"type": "function", "name": "get_weather", "description": "Weather of a city.",
                     "parameters": WEATHER["input_schema"]}


_SIMULATORS: dict[str, str] = {}


@pytest.fixture(scope="module")
def gateway(sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("entrances") / "gateway.log"
    with servers.gateway(POLICY, env={"SIM_URL": sim_url, "GATEWAY_ACCESS_LOG": "true"}, log_path=log) as url:
        _SIMULATORS[url] = sim_url
        yield url, log


def url_of_simulator(gateway_url: str) -> str:
    return _SIMULATORS[gateway_url]


def claude(url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key="anything-on-loopback", max_retries=0)


def gpt(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="anything-on-loopback", max_retries=0)


def access_log(log: Path, request_id: str) -> dict:
    """The access-log line of a request (written by a background thread: waits for it briefly)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in reversed(log.read_text().splitlines()):
            if line.startswith("{") and request_id in line:
                entry = json.loads(line)
                if entry.get("request_id") == request_id:
                    return entry
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {request_id}")


def test_messages_create_is_translated_to_the_self_hosted_model(gateway: tuple[str, Path]) -> None:
    url, log = gateway
    raw = claude(url).messages.with_raw_response.create(
        model="claude-haiku-4-5-20251001", max_tokens=64, system="Be brief.",
        messages=[{"role": "user", "content": "Say hello."}], metadata={"user_id": "u-1"})
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.model == "claude-haiku-4-5-20251001"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens") and message.usage.output_tokens > 0
    assert raw.headers["x-gateway-deployment"] == "self-qwen" and raw.headers["x-gateway-hosting"] == "self"
    entry = access_log(log, raw.headers["x-request-id"])
    assert entry["endpoint"] == "messages" and entry["model"] == "qwen" and entry["cost_usd"] > 0


def test_messages_stream_with_a_tool_round_trip(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    client = claude(url)
    question = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=128, tools=[WEATHER],
                                tool_choice={"type": "any"}, messages=question) as stream:
        first = stream.get_final_message()
    calls = [block for block in first.content if block.type == "tool_use"]
    assert first.stop_reason == "tool_use" and calls and calls[0].name == "get_weather"
    follow_up = [*question, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].id, "content": "Sunny, 21 °C"}]}]
    with client.messages.stream(model="claude-haiku-4-5", max_tokens=128, tools=[WEATHER], messages=follow_up) as stream:
        answer = stream.get_final_message()
    assert answer.stop_reason in ("end_turn", "max_tokens") and any(b.type == "text" and b.text for b in answer.content)


def test_count_tokens_answers_without_an_upstream(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    counted = claude(url).messages.count_tokens(model="claude-haiku-4-5", messages=[{"role": "user", "content": "hi " * 50}])
    assert 40 <= counted.input_tokens <= 120


def test_messages_errors_come_in_anthropics_envelope(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude(url).messages.create(model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["type"] == "error" and missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):
        claude(url).messages.create(model="qwen", max_tokens=8, messages=[])
    resp = httpx.post(f"{url}/v1/messages", json={"model": "qwen", "messages": [{"role": "user", "content": "x"}]},
                      headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"


def test_responses_create_and_stream_with_function_calls(gateway: tuple[str, Path]) -> None:
    url, log = gateway
    client = gpt(url)
    raw = client.responses.with_raw_response.create(
        model="gpt-5-mini", instructions="Be brief.", input="What is the weather in Paris?", tools=[RESPONSES_WEATHER],
        tool_choice="required", store=False)
    first = raw.parse()
    calls = [item for item in first.output if item.type == "function_call"]
    assert first.status == "completed" and calls and calls[0].name == "get_weather"
    assert raw.headers["x-gateway-deployment"] == "self-qwen"
    follow_up = [{"role": "user", "content": "What is the weather in Paris?"}, calls[0].model_dump(exclude_none=True),
                 {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 °C"}]
    with client.responses.stream(model="gpt-5-mini", input=follow_up, tools=[RESPONSES_WEATHER], store=False) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert final.output_text and final.usage is not None and final.usage.output_tokens > 0
    entry = access_log(log, raw.headers["x-request-id"])
    assert entry["endpoint"] == "responses" and entry["deployment"] == "self-qwen"


def test_responses_refuses_server_side_state(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    with pytest.raises(openai.BadRequestError) as refused:
        gpt(url).responses.create(model="gpt-5-mini", input="hi", previous_response_id="resp_123")
    assert "previous_response_id" in str(refused.value)


def test_a_translated_answer_is_cached_and_replayed_in_the_same_protocol(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    body = {"model": "qwen", "max_tokens": 32, "temperature": 0, "messages": [{"role": "user", "content": "cache me"}]}
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    first = httpx.post(f"{url}/v1/messages", json=body, headers=headers)
    second = httpx.post(f"{url}/v1/messages", json=body, headers=headers)
    assert first.headers["x-gateway-cache"] == "miss" and second.headers["x-gateway-cache"] == "hit"
    assert second.json()["content"] == first.json()["content"] and second.json()["type"] == "message"
    streamed = httpx.post(f"{url}/v1/messages", json={**body, "stream": True}, headers=headers)
    assert streamed.headers["x-gateway-cache"] == "hit" and b"event: message_stop" in streamed.content
    as_chat = httpx.post(f"{url}/v1/chat/completions", json={k: v for k, v in body.items() if k != "max_tokens"})
    assert as_chat.headers["x-gateway-cache"] == "miss", "an entry is replayed only to the protocol it was made for"


# --- upstreams that speak the client's protocol: passed through untouched ------------------------------


def test_messages_pass_through_to_an_anthropic_deployment(gateway: tuple[str, Path]) -> None:
    url, log = gateway
    raw = claude(url).messages.with_raw_response.create(
        model="claude-sonnet-4-5-20250929", max_tokens=64, messages=[{"role": "user", "content": "Say hello."}])
    message = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "vendor-claude" and "x-gateway-translation" not in raw.headers
    assert message.type == "message" and message.content[0].type == "text" and message.usage.output_tokens > 0
    entry = access_log(log, raw.headers["x-request-id"])
    assert entry["endpoint"] == "messages" and entry["cost_usd"] > 0 and not entry.get("usage_estimated")


def test_a_native_messages_stream_with_tools_round_trips(gateway: tuple[str, Path]) -> None:
    url, log = gateway
    client = claude(url)
    question = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]
    with client.messages.stream(model="claude", max_tokens=128, tools=[WEATHER], tool_choice={"type": "any"},
                                messages=question) as stream:
        first = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    calls = [block for block in first.content if block.type == "tool_use"]
    assert first.stop_reason == "tool_use" and calls
    follow_up = [*question, {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].id, "content": "Sunny"}]}]
    answer = client.messages.create(model="claude", max_tokens=128, tools=[WEATHER], messages=follow_up)
    assert answer.stop_reason in ("end_turn", "max_tokens")
    entry = access_log(log, request_id)
    assert entry["deployment"] == "vendor-claude" and entry["cost_usd"] > 0 and not entry.get("usage_estimated")


def test_responses_pass_through_to_an_openai_deployment(gateway: tuple[str, Path]) -> None:
    url, log = gateway
    client = gpt(url)
    raw = client.responses.with_raw_response.create(model="gpt-4o", input="Say hello.", store=False)
    response = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "vendor-gpt" and "x-gateway-translation" not in raw.headers
    assert response.status == "completed" and response.output_text
    with client.responses.stream(model="gpt-4o", input="What is the weather in Paris?", tools=[RESPONSES_WEATHER],
                                 tool_choice="required", store=False) as stream:
        final = stream.get_final_response()
    assert any(item.type == "function_call" for item in final.output)
    body = {"model": "gpt-4o", "input": "Say hello.", "store": False, "stream": True}
    with httpx.stream("POST", f"{url}/v1/responses", json=body) as raw_stream:
        events = b"".join(raw_stream.iter_bytes())
        request_id = raw_stream.headers["x-request-id"]
    assert b"event: response.completed" in events and b"[DONE]" not in events
    entry = access_log(log, request_id)
    assert entry["endpoint"] == "responses" and entry["deployment"] == "vendor-gpt" and entry["cost_usd"] > 0
    assert not entry.get("usage_estimated"), "the native stream's own usage is read"


def test_the_anthropic_deployments_key_goes_as_x_api_key_and_the_clients_version_is_forwarded(
        gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    resp = httpx.post(f"{url}/v1/messages", headers={"anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024"},
                      json={"model": "claude", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["type"] == "message"
    sim_url = url_of_simulator(url)
    last = httpx.get(f"{sim_url}/sim/stats").json()["last_request"]["claude-sonnet-4-5"]
    assert last["path"] == "/v1/messages" and last["body"]["model"] == "claude-sonnet-4-5"
    headers = {k.lower(): v for k, v in last["headers"].items()}
    assert headers["x-api-key"] == "sk-ant-vendor-0123456789" and "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01" and headers["anthropic-beta"] == "tools-2024"
