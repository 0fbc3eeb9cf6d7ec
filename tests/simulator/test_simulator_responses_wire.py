"""The simulator's Responses endpoint on the wire: event framing, error envelopes, faults, ledger, auth.

Raw HTTP where the SDK would hide the detail; the SDK (over HTTP and in-process) where what matters
is what a client sees.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import openai
import pytest

from gateway.simulator.server import SimulatorServer

HELLO = {"model": "m", "input": "Hello there"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def text_events(tokens: int) -> list[str]:
    return [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * tokens,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http, sim, body: dict[str, Any], headers: dict[str, str] | None = None):
    async with http.post(f"{sim.url}/v1/responses", json=body, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


def named_events(raw: bytes) -> list[dict[str, Any]]:
    """Each ``event:``/``data:`` pair, checked to agree, as the data object."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {data['type']}"
        events.append(data)
    return events


async def test_stream_wire_format(sim, http):
    status, headers, raw = await post(http, sim, {"model": "m", "input": "Hello there", "stream": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert b"[DONE]" not in raw  # Responses streams end with response.completed, no sentinel
    events = named_events(raw)
    assert [e["type"] for e in events] == text_events(16)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert all(e["logprobs"] == [] and isinstance(e["obfuscation"], str) for e in deltas)
    assert events[2]["item"]["status"] == "in_progress" and events[2]["item"]["content"] == []
    assert events[3]["part"] == {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}

    body = {
        "model": "m",
        "input": "Hello there",
        "stream": True,
        "stream_options": {"include_obfuscation": False},
    }
    _, _, raw = await post(http, sim, body)
    assert not any("obfuscation" in e for e in named_events(raw))


async def test_function_call_stream_on_the_wire(sim, http):
    _, _, raw = await post(http, sim, {**HELLO, "stream": True, "tools": [WEATHER]})
    events = named_events(raw)
    added, done = events[2], events[-2]
    assert added["item"] == {**done["item"], "status": "in_progress", "arguments": ""}
    assert done["item"]["status"] == "completed" and done["item"]["call_id"].startswith("call_")
    arguments_done = events[-3]
    assert arguments_done["type"] == "response.function_call_arguments.done"
    assert arguments_done["name"] == "get_weather" and arguments_done["item_id"] == added["item"]["id"]
    deltas = [e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas) == arguments_done["arguments"] == done["item"]["arguments"]
    assert json.loads(arguments_done["arguments"]) == {"city": "Paris"}
    assert events[-1]["response"]["output"] == [done["item"]]


CHAT_SHAPED_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
CALL = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}


@pytest.mark.parametrize(
    ("body", "param", "code", "message"),
    [
        ({"model": "m"}, "input", "missing_required_parameter", "Missing required parameter: 'input'."),
        ({**HELLO, "input": 5}, "input", "invalid_type", "Invalid type for 'input'"),
        ({**HELLO, "input": ["hi"]}, "input[0]", "invalid_type", "expected an object, but got a string"),
        (
            {**HELLO, "input": [{"role": "tool", "tool_call_id": "call_1", "content": "21"}]},
            "input[0].role",
            "invalid_value",
            "Invalid value: 'tool'. Supported values are: 'assistant', 'system', 'developer', and 'user'.",
        ),
        (
            {**HELLO, "input": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
            "input[0].content[0].type",
            "invalid_value",
            "Invalid value: 'text'.",
        ),
        (
            {**HELLO, "input": [{"role": "assistant", "content": [{"type": "input_text", "text": "hi"}]}]},
            "input[0].content[0].type",
            "invalid_value",
            "Supported values are: 'output_text' and 'refusal'.",
        ),
        (
            {**HELLO, "input": [{"content": "no role, no type"}]},
            "input[0].type",
            "missing_required_parameter",
            "",
        ),
        (
            {**HELLO, "input": [{**CALL, "name": None}]},
            "input[0].name",
            "missing_required_parameter",
            "Missing required parameter: 'input[0].name'.",
        ),
        (
            {**HELLO, "input": [CALL, {"role": "user", "content": "and?"}]},
            "input",
            None,
            "No tool output found for function call call_1.",
        ),
        (
            {**HELLO, "input": [{"type": "function_call_output", "call_id": "call_9", "output": "x"}]},
            "input",
            None,
            "No tool call found for function call output with call_id call_9.",
        ),
        (
            {
                **HELLO,
                "input": [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAAx"}],
            },
            None,
            "invalid_encrypted_content",
            "The encrypted content for item rs_1 could not be verified.",
        ),
        ({**HELLO, "reasoning": {"effort": "extreme"}}, "reasoning.effort", "invalid_value", "'extreme'"),
        ({**HELLO, "reasoning": {"summary": "long"}}, "reasoning.summary", "invalid_value", "'long'"),
        ({**HELLO, "instructions": ["be brief"]}, "instructions", "invalid_type", "expected a string"),
        ({**HELLO, "tools": [CHAT_SHAPED_TOOL]}, "tools[0].name", "missing_required_parameter", ""),
        ({**HELLO, "tools": [{"name": "x"}]}, "tools[0].type", "missing_required_parameter", ""),
        ({**HELLO, "tools": {"type": "function"}}, "tools", "invalid_type", "expected an array"),
        (
            {**HELLO, "tool_choice": "sometimes"},
            "tool_choice",
            "invalid_value",
            "'none', 'auto', and 'required'",
        ),
        (
            {**HELLO, "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
            "tool_choice",
            None,
            "Tool choice 'function' not found in 'tools' parameter.",
        ),
        (
            {**HELLO, "tool_choice": {"type": "allowed_tools", "mode": "none", "tools": []}},
            "tool_choice.mode",
            "invalid_value",
            "Supported values are: 'auto' and 'required'.",
        ),
        (
            {**HELLO, "text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
            "missing_required_parameter",
            "",
        ),
        (
            {**HELLO, "text": {"format": {"type": "json_schema", "name": "x"}}},
            "text.format.schema",
            "missing_required_parameter",
            "",
        ),
        ({**HELLO, "text": {"format": {"type": "xml"}}}, "text.format.type", "invalid_value", "'xml'"),
        ({**HELLO, "max_output_tokens": "100"}, "max_output_tokens", "invalid_type", "expected an integer"),
        ({**HELLO, "max_output_tokens": 0}, "max_output_tokens", "integer_below_min_value", "got 0 instead"),
        ({**HELLO, "reasoning": "high"}, "reasoning", "invalid_type", "expected an object"),
        (
            {**HELLO, "previous_response_id": "resp_1"},
            "previous_response_id",
            "previous_response_not_found",
            "Previous response with id 'resp_1' not found.",
        ),
        ({**HELLO, "conversation": {"id": "conv_1"}}, "conversation", None, "Conversation with id 'conv_1'"),
        ({**HELLO, "background": True}, "background", None, "stores none"),
    ],
)
async def test_invalid_requests_get_openais_error_envelope(sim, http, body, param, code, message):
    status, headers, raw = await post(http, sim, body)
    assert status == 400 and headers["content-type"] == "application/json"
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param and error["code"] == code
    assert message in error["message"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"type": "item_reference", "id": "msg_1"}, "Item with id 'msg_1' not found."),
        (
            {"type": "reasoning", "id": "rs_1", "summary": []},
            "Item with id 'rs_1' not found. Items are not persisted when `store` is set to false.",
        ),
    ],
)
async def test_items_that_point_at_stored_state_are_not_found(sim, http, item, message):
    status, _, raw = await post(http, sim, {**HELLO, "input": [item, {"role": "user", "content": "Hi"}]})
    assert status == 404
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "input"
    assert error["message"].startswith(message)


async def test_the_stored_state_flags_that_need_nothing_stored_are_accepted(sim, http):
    """``store: false``, ``background: false`` and nulls ask for nothing the simulator lacks."""
    body = {**HELLO, "store": False, "background": False, "previous_response_id": None, "conversation": None}
    status, _, raw = await post(http, sim, body)
    assert status == 200 and json.loads(raw)["store"] is False


# --- faults ---------------------------------------------------------------------------------------


def fault(spec: str) -> dict[str, str]:
    return {"x-sim-fault": spec}


async def test_status_fault_answers_in_openais_envelope(client):
    with pytest.raises(openai.RateLimitError) as info:
        await client.responses.create(
            **HELLO, extra_headers=fault("status=429;retry_after=2;message=slow down")
        )
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.body == {
        "message": "slow down",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(openai.InternalServerError):
        await client.responses.create(**HELLO, stream=True, extra_headers=fault("status=503"))


async def test_fault_keywords_in_the_model_name_apply(client):
    with pytest.raises(openai.InternalServerError) as info:
        await client.responses.create(model="gpt-error-503", input="Hi")
    assert info.value.status_code == 503


async def test_fail_first_fails_then_answers(client):
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.responses.create(model="sim-fail-first-2", input="Hi")
    reply = await client.responses.create(model="sim-fail-first-2", input="Hi")
    assert reply.status == "completed"


async def test_truncated_stream_never_completes(client, sim, http):
    _, _, raw = await post(http, sim, {**HELLO, "stream": True}, fault("truncate_after=5"))
    assert [e["type"] for e in named_events(raw)] == text_events(16)[:5]

    async with client.responses.stream(**HELLO, extra_headers=fault("truncate_after=5")) as stream:
        events = [event async for event in stream]
        with pytest.raises(RuntimeError, match="response.completed"):
            await stream.get_final_response()
    assert len(events) == 5


async def test_reset_after_breaks_the_stream(client):
    with pytest.raises(openai.APIConnectionError):
        async with client.responses.stream(**HELLO, extra_headers=fault("reset_after=3")) as stream:
            async for _ in stream:
                pass


async def test_malformed_after_corrupts_one_event(sim, http):
    _, _, raw = await post(http, sim, {**HELLO, "stream": True}, fault("malformed_after=2"))
    blocks = raw.decode().split("\n\n")
    assert blocks[2].startswith("event: response.output_item.added\ndata: ")
    with pytest.raises(json.JSONDecodeError):
        json.loads(blocks[2].split("data: ", 1)[1])
    assert json.loads(blocks[3].split("data: ", 1)[1])["type"] == "response.content_part.added"


async def test_malformed_body(sim, http):
    status, _, raw = await post(http, sim, HELLO, fault("malformed"))
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


async def test_hang_after_stalls_mid_stream(sim, http):
    timeout = aiohttp.ClientTimeout(sock_read=0.3)
    async with http.post(
        f"{sim.url}/v1/responses",
        json={**HELLO, "stream": True},
        headers=fault("hang_after=4"),
        timeout=timeout,
    ) as resp:
        received = b""
        with pytest.raises(asyncio.TimeoutError):
            async for chunk in resp.content.iter_any():
                received += chunk
    assert [e["type"] for e in named_events(received)] == text_events(16)[:4]


async def test_hang_holds_the_request_until_the_client_gives_up(sim):
    async with openai.AsyncOpenAI(
        base_url=sim.openai_base_url, api_key="sk-test", max_retries=0, timeout=0.3
    ) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await client.responses.create(**HELLO, extra_headers=fault("hang"))
        assert time.monotonic() - started >= 0.25


async def test_reset_drops_the_connection(client):
    with pytest.raises(openai.APIConnectionError):
        await client.responses.create(**HELLO, extra_headers=fault("reset"))


async def test_ttft_and_slow_pace_the_answer(client):
    started = time.monotonic()
    await client.responses.create(**HELLO, extra_headers={"x-sim-ttft-ms": "150"})
    assert time.monotonic() - started >= 0.14

    started = time.monotonic()
    async with client.responses.stream(
        **HELLO, extra_headers={**fault("slow=100"), "x-sim-output-tokens": "10"}
    ) as stream:
        arrivals = [time.monotonic() async for _ in stream]
    # 18 events (10 deltas and the 8 around them) spaced 10 ms apart after the first.
    assert len(arrivals) == 18 and arrivals[-1] - started >= 0.16


# --- ledger and auth ------------------------------------------------------------------------------


async def test_ledger_records_responses_calls(sim, http):
    async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0) as client:
        await client.responses.create(model="a", input="Hi", store=False)
        async with client.responses.stream(model="a", input="Hi") as stream:
            await stream.get_final_response()
        with pytest.raises(openai.BadRequestError):
            await client.responses.create(model="b", input="Hi", previous_response_id="resp_1")
        with pytest.raises(openai.InternalServerError):
            await client.responses.create(model="a", input="Hi", extra_headers=fault("status=500"))

    async with http.get(f"{sim.url}/sim/stats") as resp:
        stats = await resp.json()
    assert stats["by_model_path"] == {"a": {"/v1/responses": 3}, "b": {"/v1/responses": 1}}
    assert stats["faults"] == {"status_500": 1}
    assert stats["last_request"]["b"]["body"]["previous_response_id"] == "resp_1"
    assert stats["last_request"]["a"]["headers"]["x-sim-fault"] == "status=500"


async def test_required_api_key_is_checked():
    async with SimulatorServer(ttft_ms=0, api_key="sk-right") as sim:
        async with openai.AsyncOpenAI(
            base_url=sim.openai_base_url, api_key="sk-wrong", max_retries=0
        ) as wrong:
            with pytest.raises(openai.AuthenticationError) as info:
                await wrong.responses.create(**HELLO)
        assert info.value.code == "invalid_api_key"
        async with openai.AsyncOpenAI(
            base_url=sim.openai_base_url, api_key="sk-right", max_retries=0
        ) as right:
            assert (await right.responses.create(**HELLO)).status == "completed"
