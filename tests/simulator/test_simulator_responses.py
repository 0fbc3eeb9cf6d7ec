"""The simulator's OpenAI Responses endpoint, driven by the official ``openai`` SDK.

Every SDK test runs twice: against the HTTP server (``SimulatorServer``) and against the in-process
``Simulator.handle`` (the SDK over a transport that calls it directly, no socket). Wire details the
SDK hides (event lines, sequence numbers, error bodies) and faults are in
``test_simulator_responses_wire.py``.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from openai.types.responses import Response
from pydantic import BaseModel

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 2, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA}
TIME = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 16,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


# --- non-streamed ---------------------------------------------------------------------------------


async def test_create_answers_with_a_response_object(client):
    reply = await client.responses.create(
        model="gpt-4.1-mini-2025-04-14", instructions="Be brief.", input="Hello there", store=False
    )

    assert isinstance(reply, Response)
    assert reply.id.startswith("resp_") and reply.object == "response"
    assert reply.status == "completed" and reply.error is None and reply.incomplete_details is None
    assert reply.model == "gpt-4.1-mini-2025-04-14"
    assert reply.instructions == "Be brief." and reply.store is False
    [message] = reply.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_")
    [part] = message.content
    assert part.type == "output_text" and part.annotations == []
    assert reply.output_text == part.text
    assert reply.output_text.startswith("Simulated answer from gpt-4.1-mini-2025-04-14:")
    usage = reply.usage
    assert usage.output_tokens == 16 == len(reply.output_text.split())
    assert usage.input_tokens == 6  # "Be brief.\nHello there" is 21 characters
    assert usage.total_tokens == 22
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0


async def test_answers_depend_only_on_the_input(client):
    async def text(**kw: Any) -> str:
        return (await client.responses.create(model="m", **kw)).output_text

    first = await text(input="Hello there")
    assert await text(input=[{"role": "user", "content": "Hello there"}]) == first
    assert (
        await text(input=[{"role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}])
        == first
    )
    assert await text(input="Something else") != first


async def test_request_settings_are_accepted_and_reported(client):
    reply = await client.responses.create(
        model="m",
        input="Hi",
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        prompt_cache_key="key-1",
        metadata={"ticket": "42"},
        temperature=0.2,
        service_tier="auto",
        stream_options=None,
    )
    assert reply.status == "completed"
    assert reply.reasoning.effort == "low" and reply.reasoning.summary == "auto"
    assert reply.prompt_cache_key == "key-1" and reply.metadata == {"ticket": "42"}
    assert reply.temperature == 0.2 and reply.service_tier == "default"
    assert reply.store is True and reply.previous_response_id is None
    assert reply.text.format.type == "text" and reply.tool_choice == "auto" and reply.tools == []


async def test_max_output_tokens_cuts_the_answer_and_marks_it_incomplete(client):
    reply = await client.responses.create(
        model="m", input="Hi", max_output_tokens=16, extra_headers={"x-sim-output-tokens": "40"}
    )
    assert reply.status == "incomplete"
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.max_output_tokens == 16 and reply.completed_at is None
    assert reply.output[0].status == "incomplete"
    assert reply.usage.output_tokens == 16 == len(reply.output_text.split())

    whole = await client.responses.create(
        model="m", input="Hi", max_output_tokens=40, extra_headers={"x-sim-output-tokens": "40"}
    )
    assert whole.status == "completed" and whole.output_text.startswith(reply.output_text)


async def test_max_output_tokens_below_sixteen_is_refused_as_openai_does(client):
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="m", input="Hi", max_output_tokens=15)
    assert info.value.status_code == 400
    assert info.value.code == "integer_below_min_value" and info.value.param == "max_output_tokens"
    assert "Expected a value >= 16, but got 15 instead." in info.value.body["message"]


async def test_previous_response_id_is_refused_because_nothing_is_stored(client):
    first = await client.responses.create(model="m", input="Hi", store=True)
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="m", input="And then?", previous_response_id=first.id)
    assert info.value.code == "previous_response_not_found"
    assert info.value.param == "previous_response_id"
    assert info.value.body["message"] == f"Previous response with id '{first.id}' not found."


# --- structured output ----------------------------------------------------------------------------


class Weather(BaseModel):
    city: str
    unit: str
    days: int


async def test_json_schema_format_answers_a_valid_document(client):
    parsed = await client.responses.parse(model="m", input="Weather in Paris?", text_format=Weather)
    assert isinstance(parsed.output_parsed, Weather)
    assert parsed.text.format.type == "json_schema" and parsed.text.format.name == "Weather"

    schema_format = {"type": "json_schema", "name": "weather", "schema": WEATHER_SCHEMA, "strict": True}
    reply = await client.responses.create(model="m", input="Weather?", text={"format": schema_format})
    jsonschema.validate(json.loads(reply.output_text), WEATHER_SCHEMA)

    async with client.responses.stream(model="m", input="Weather?", text={"format": schema_format}) as stream:
        final = await stream.get_final_response()
    assert json.loads(final.output_text) == json.loads(reply.output_text)


async def test_json_object_format_answers_json(client):
    reply = await client.responses.create(
        model="m", input="Answer in JSON", text={"format": {"type": "json_object"}}
    )
    assert isinstance(json.loads(reply.output_text), dict)


# --- streamed -------------------------------------------------------------------------------------


async def test_stream_follows_openais_event_sequence(client):
    whole = await client.responses.create(model="m", input="Hello there")
    async with client.responses.stream(model="m", input="Hello there") as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()

    assert [e.type for e in events] == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    created, in_progress = events[0].response, events[1].response
    assert (
        created.status == in_progress.status == "in_progress"
        and created.output == []
        and created.usage is None
    )
    assert created.id == in_progress.id == final.id
    item_id = events[2].item.id
    assert all(e.item_id == item_id for e in events[3:-2])
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == whole.output_text
    assert events[-4].text == events[-3].part.text == whole.output_text
    assert final.status == "completed" and final.output_text == whole.output_text
    assert final.usage.output_tokens == 16 and final.usage.input_tokens == whole.usage.input_tokens


async def test_stream_cut_by_max_output_tokens_ends_with_response_incomplete(client):
    async with client.responses.stream(
        model="m", input="Hi", max_output_tokens=16, extra_headers={"x-sim-output-tokens": "30"}
    ) as stream:
        events = [event async for event in stream]
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert events[-2].type == "response.output_item.done" and events[-2].item.status == "incomplete"
    assert sum(e.type == "response.output_text.delta" for e in events) == 16


# --- function calls -------------------------------------------------------------------------------


async def test_function_calls_are_answered_with_schema_valid_arguments(client):
    reply = await client.responses.create(model="m", input="Weather and time?", tools=[WEATHER, TIME])
    assert reply.status == "completed" and reply.output_text == ""
    calls = reply.output
    assert [c.type for c in calls] == ["function_call", "function_call"]
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert all(
        c.id.startswith("fc_") and c.call_id.startswith("call_") and c.status == "completed" for c in calls
    )
    assert len({c.call_id for c in calls}) == 2
    jsonschema.validate(json.loads(calls[0].arguments), WEATHER_SCHEMA)
    assert json.loads(calls[1].arguments) == {}
    assert reply.tools[0].name == "get_weather" and reply.tools[0].strict is True


@pytest.mark.parametrize(
    ("settings", "called"),
    [
        ({}, ["get_weather", "get_time"]),
        ({"parallel_tool_calls": False}, ["get_weather"]),
        ({"tool_choice": "none"}, []),
        ({"tool_choice": "required"}, ["get_weather", "get_time"]),
        ({"tool_choice": {"type": "function", "name": "get_time"}}, ["get_time"]),
        (
            {
                "tool_choice": {
                    "type": "allowed_tools",
                    "mode": "required",
                    "tools": [{"type": "function", "name": "get_time"}],
                }
            },
            ["get_time"],
        ),
        ({"tool_choice": {"type": "web_search_preview"}}, []),
    ],
)
async def test_tool_choice_decides_what_is_called(client, settings, called):
    reply = await client.responses.create(model="m", input="Weather?", tools=[WEATHER, TIME], **settings)
    assert [item.name for item in reply.output if item.type == "function_call"] == called
    assert (reply.output_text != "") == (not called)


async def test_hosted_tools_are_echoed_but_never_called(client):
    tools = [{"type": "web_search"}, WEATHER, {"type": "custom", "name": "apply_patch"}]
    reply = await client.responses.create(model="m", input="Weather?", tools=tools)
    assert [item.name for item in reply.output] == ["get_weather"]
    assert [tool.type for tool in reply.tools] == ["web_search", "function", "custom"]


async def test_streamed_function_call_events(client):
    whole = await client.responses.create(model="m", input="Weather?", tools=[WEATHER])
    async with client.responses.stream(model="m", input="Weather?", tools=[WEATHER]) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()

    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(types[3:-3]) == {"response.function_call_arguments.delta"}
    added = events[2].item
    assert added.type == "function_call" and added.status == "in_progress" and added.arguments == ""
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert arguments == events[-3].arguments == whole.output[0].arguments
    [call] = final.output
    assert call.call_id == added.call_id and call.name == "get_weather" and call.arguments == arguments


async def test_tool_round_trip_gets_a_follow_up_answer(client):
    question = [{"role": "user", "content": "Weather in Paris?"}]
    first = await client.responses.create(model="m", input=question, tools=[WEATHER])
    [call] = first.output
    result = {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}
    follow_up = await client.responses.create(
        model="m", input=[*question, *first.output, result], tools=[WEATHER]
    )
    assert follow_up.status == "completed"
    assert [item.type for item in follow_up.output] == ["message"]
    assert follow_up.output_text.startswith("Simulated answer from m:")
    assert follow_up.usage.input_tokens > first.usage.input_tokens


async def test_streamed_tool_round_trip_gets_a_streamed_follow_up(client):
    question = [{"role": "user", "content": "Weather and time?"}]
    async with client.responses.stream(model="m", input=question, tools=[WEATHER, TIME]) as stream:
        first = await stream.get_final_response()
    results = [
        {"type": "function_call_output", "call_id": call.call_id, "output": f"result of {call.name}"}
        for call in first.output
    ]
    assert len(results) == 2
    async with client.responses.stream(
        model="m", input=[*question, *first.output, *results], tools=[WEATHER, TIME]
    ) as stream:
        follow_up = await stream.get_final_response()
    assert [item.type for item in follow_up.output] == ["message"]
    assert follow_up.output_text.startswith("Simulated answer from m:")


async def test_tool_output_without_its_call_is_refused(client):
    orphan = {"type": "function_call_output", "call_id": "call_missing", "output": "21"}
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(
            model="m", input=[{"role": "user", "content": "Hi"}, orphan], tools=[WEATHER]
        )
    assert (
        info.value.body["message"] == "No tool call found for function call output with call_id call_missing."
    )
    assert info.value.param == "input"


# --- reasoning ------------------------------------------------------------------------------------

REASONING = {"effort": "low", "summary": "auto"}
ENCRYPTED = ["reasoning.encrypted_content"]


async def test_reasoning_item_comes_before_the_answer_and_costs_tokens(client):
    plain = await client.responses.create(model="m", input="Hi")
    reply = await client.responses.create(model="m", input="Hi", reasoning=REASONING, include=ENCRYPTED)

    assert [item.type for item in reply.output] == ["reasoning", "message"]
    reasoning = reply.output[0]
    assert reasoning.id.startswith("rs_") and reasoning.encrypted_content.startswith("gAAAAA")
    [summary] = reasoning.summary
    assert summary.type == "summary_text" and summary.text
    assert reply.output_text == plain.output_text
    assert reply.usage.output_tokens_details.reasoning_tokens == 8
    assert reply.usage.output_tokens == plain.usage.output_tokens + 8
    assert reply.reasoning.effort == "low" and reply.reasoning.summary == "auto"

    quiet = await client.responses.create(model="m", input="Hi", reasoning={"effort": "high"})
    assert quiet.output[0].summary == [] and quiet.output[0].encrypted_content is None
    assert quiet.usage.output_tokens_details.reasoning_tokens == 32
    off = await client.responses.create(model="m", input="Hi", reasoning={"effort": "none"})
    assert [item.type for item in off.output] == ["message"] and off.reasoning.effort == "none"
    assert plain.usage.output_tokens_details.reasoning_tokens == 0


async def test_reasoning_stream_has_summary_events(client):
    async with client.responses.stream(
        model="m", input="Hi", reasoning=REASONING, include=ENCRYPTED
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()

    types = [e.type for e in events]
    summary_deltas = types.count("response.reasoning_summary_text.delta")
    assert summary_deltas > 0
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
    ]
    reasoning_end = 4 + summary_deltas
    assert types[reasoning_end : reasoning_end + 3] == [
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    ]
    assert types[reasoning_end + 3 :] == TEXT_EVENTS[2:]
    added, done = events[2].item, events[reasoning_end + 2].item
    assert added.summary == [] and added.encrypted_content is None
    assert done.id == added.id and done.encrypted_content == final.output[0].encrypted_content
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert summary == final.output[0].summary[0].text
    assert [e.output_index for e in events if e.type == "response.output_text.delta"][0] == 1
    assert final.usage.output_tokens_details.reasoning_tokens == 8


async def test_reasoning_can_spend_the_whole_budget(client):
    reply = await client.responses.create(
        model="m", input="Hi", reasoning={"effort": "high"}, max_output_tokens=20
    )
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_output_tokens"
    assert [item.type for item in reply.output] == ["reasoning"] and reply.output_text == ""


async def test_stateless_tool_round_trip_carries_encrypted_reasoning(client):
    """The coding-agent loop with ``store: false``: reasoning travels back as encrypted content."""
    settings = {
        "model": "m",
        "tools": [WEATHER],
        "reasoning": REASONING,
        "include": ENCRYPTED,
        "store": False,
    }
    question = [{"role": "user", "content": "Weather in Paris?"}]
    first = await client.responses.create(input=question, **settings)
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    result = {"type": "function_call_output", "call_id": first.output[1].call_id, "output": "21 C"}

    follow_up = await client.responses.create(input=[*question, *first.output, result], **settings)
    assert [item.type for item in follow_up.output] == ["reasoning", "message"]

    reasoning = first.output[0].to_dict()
    sealed = reasoning["encrypted_content"]
    middle = len(sealed) // 2
    flipped = sealed[:middle] + ("B" if sealed[middle] != "B" else "C") + sealed[middle + 1 :]
    altered = {**reasoning, "encrypted_content": flipped}
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(input=[*question, altered, first.output[1], result], **settings)
    assert info.value.code == "invalid_encrypted_content"

    stripped = {key: value for key, value in reasoning.items() if key != "encrypted_content"}
    with pytest.raises(openai.NotFoundError) as missing:
        await client.responses.create(input=[*question, stripped, first.output[1], result], **settings)
    assert "Items are not persisted" in missing.value.body["message"]
