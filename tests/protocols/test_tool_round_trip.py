"""Tool use round-trips through both translations: a streamed tool call, accumulated by the official SDK,
sent back by the client with the tool's result, becomes the chat history the upstream needs — the same
call ids, names and arguments, the result right after the call — so the model can give its follow-up."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.types import Endpoint
from gateway.protocols import openai as openai_body
from gateway.protocols.anthropic_messages_request import messages_to_chat
from gateway.protocols.anthropic_messages_stream import MessagesStream
from gateway.protocols.anthropic_messages_validation import validate_messages
from gateway.protocols.openai_responses_request import responses_to_chat
from gateway.protocols.openai_responses_response import ResponsesContext
from gateway.protocols.openai_responses_stream import ResponsesStream
from gateway.protocols.openai_responses_validation import validate_responses
from tests.protocols import golden
from tests.protocols.sdk_clients import anthropic_final_message, responses_final

CASE = next(c for c in golden.cases("chat_streams") if c["name"].startswith("vLLM reasoning then text then a tool call"))
CALL = {"id": "chatcmpl-tool-77", "type": "function", "function": {"name": "get_weather", "arguments": '{"location": "Oslo"}'}}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}


def test_anthropic_client_sends_the_tool_result_back() -> None:
    translator = MessagesStream(model="m", message_id="msg_1")
    streamed = anthropic_final_message(translator.feed_bytes(golden.upstream_bytes(CASE)) + translator.close())
    assert streamed.stop_reason == "tool_use"
    call = streamed.content[-1]
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [block.model_dump(mode="json", exclude_none=True) for block in streamed.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "-3 °C, snow"}]},
    ]
    body = {"model": "m", "max_tokens": 256, "tools": [WEATHER_TOOL], "messages": history}
    validate_messages(body)
    chat = messages_to_chat(body).body
    openai_body.validate(Endpoint.CHAT, chat)
    assert chat["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "tool_calls": [{**CALL, "function": {**CALL["function"], "arguments": '{"location":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "chatcmpl-tool-77", "content": "-3 °C, snow"},
    ]


def test_responses_client_sends_the_function_output_back() -> None:
    context = ResponsesContext.for_request({"model": "m", "input": "x"}, response_id="resp_1", created_at=1)
    translator = ResponsesStream(context)
    _, final = responses_final(translator.feed_bytes(golden.upstream_bytes(CASE)) + translator.close())
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, orjson.loads(c.arguments)) for c in calls] == [("chatcmpl-tool-77", "get_weather", {"location": "Oslo"})]
    # What a Responses client (store: false) sends next: the whole output back, then the function's output.
    items = [{"role": "user", "content": "Weather in Oslo?"}, *[item.model_dump(mode="json", exclude_none=True) for item in final.output],
             {"type": "function_call_output", "call_id": calls[0].call_id, "output": "-3 °C, snow"}]
    body = {"model": "m", "store": False, "input": items,
            "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]}]}
    validate_responses(body)
    out = responses_to_chat(body)
    openai_body.validate(Endpoint.CHAT, out.body)
    assert out.body["messages"][1:] == [
        {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "chatcmpl-tool-77", "content": "-3 °C, snow"},
    ]
    assert out.dropped == ["input.reasoning"]  # the reasoning item is not sent back to a chat upstream
