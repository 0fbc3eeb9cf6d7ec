"""``POST /v1/messages``: Anthropic's Messages API, non-streaming and its named SSE event sequence.

Stream: ``message_start``, then per content block ``content_block_start``, (``ping`` after the
first), ``content_block_delta`` (``text_delta`` or ``input_json_delta``), ``content_block_stop``;
then ``message_delta`` (stop reason, output tokens) and ``message_stop``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.simulator.generation import Answer, Choice, Prompt, Tool, generate
from gateway.simulator.wire import BadRequest, anthropic_error, sse_named

_STOP_REASONS = {"tool_calls": "tool_use", "length": "max_tokens"}


@dataclass(slots=True)
class MessagesRequest:
    prompt: Prompt
    stream: bool = False


class AnthropicMessages:
    error = staticmethod(anthropic_error)

    def parse(self, body: dict[str, Any], model: str) -> MessagesRequest:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise BadRequest("messages: must be a non-empty list of message objects", param="messages")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadRequest("max_tokens: Field required (a positive integer)", param="max_tokens")
        texts = [_blocks_text(body.get("system"))] + [_blocks_text(m.get("content")) for m in messages]
        stops = body.get("stop_sequences") or []
        prompt = Prompt(
            model=model,
            text="\n".join(t for t in texts if t),
            call_tools=_tools_to_call(body, messages[-1]),
            stop=tuple(s for s in stops if isinstance(s, str) and s),
            max_tokens=max_tokens,
        )
        return MessagesRequest(prompt, stream=bool(body.get("stream")))

    def answer(self, request: MessagesRequest, output_tokens: int, seed: int) -> Answer:
        return generate(request.prompt, output_tokens, seed)

    def render(self, answer: Answer, request: MessagesRequest) -> bytes:
        choice = answer.choices[0]
        message = _message_head(request, answer)
        message.update(
            content=_content_blocks(choice),
            stop_reason=_stop_reason(choice),
            stop_sequence=choice.stop_sequence,
        )
        message["usage"]["output_tokens"] = choice.completion_tokens
        return orjson.dumps(message)

    def events(self, answer: Answer, request: MessagesRequest) -> list[bytes]:
        choice = answer.choices[0]
        head = _message_head(request, answer)
        head["usage"]["output_tokens"] = 1
        events = [sse_named("message_start", {"type": "message_start", "message": head})]
        for index, block in enumerate(_content_blocks(choice)):
            start: dict[str, Any]
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": token} for token in choice.tokens]
            else:
                start = {**block, "input": {}}
                call = choice.tool_calls[index]
                deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in call.fragments]
            events.append(
                sse_named(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": start},
                )
            )
            if index == 0:
                events.append(sse_named("ping", {"type": "ping"}))
            events.extend(
                sse_named(
                    "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                )
                for delta in deltas
            )
            events.append(sse_named("content_block_stop", {"type": "content_block_stop", "index": index}))
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(choice), "stop_sequence": choice.stop_sequence},
            "usage": {"output_tokens": choice.completion_tokens},
        }
        events.append(sse_named("message_delta", message_delta))
        events.append(sse_named("message_stop", {"type": "message_stop"}))
        return events


def _message_head(request: MessagesRequest, answer: Answer) -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": request.prompt.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": answer.prompt_tokens,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


def _content_blocks(choice: Choice) -> list[dict[str, Any]]:
    if choice.tool_calls:
        return [
            {
                "type": "tool_use",
                "id": f"toolu_{call.id}",
                "name": call.name,
                "input": orjson.loads(call.arguments),
            }
            for call in choice.tool_calls
        ]
    return [{"type": "text", "text": choice.text}]


def _stop_reason(choice: Choice) -> str:
    if choice.stop_sequence is not None:
        return "stop_sequence"
    return _STOP_REASONS.get(choice.finish, "end_turn")


def _blocks_text(content: Any) -> str:
    """Text of a string or a list of content blocks (text, tool_result, tool_use input)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(_blocks_text(block.get("content")))
        elif block.get("type") == "tool_use":
            parts.append(orjson.dumps(block.get("input")).decode())
    return "\n".join(parts)


def _tools_to_call(body: dict[str, Any], last: dict[str, Any]) -> tuple[Tool, ...]:
    raw_tools = body.get("tools") or []
    if not isinstance(raw_tools, list):
        raise BadRequest("tools: must be a list", param="tools")
    tools = [
        Tool(t["name"], t.get("input_schema") or {})
        for t in raw_tools
        if isinstance(t, dict) and isinstance(t.get("name"), str) and "input_schema" in t
    ]
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = choice.get("type", "auto") if isinstance(choice, dict) else "auto"
    if not tools or kind == "none":
        return ()
    if kind == "tool":
        named = tuple(t for t in tools if t.name == choice.get("name"))
        if not named:
            raise BadRequest(f"tool_choice names unknown tool {choice.get('name')!r}", param="tool_choice")
        return named
    content = last.get("content")
    answered = isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    )
    if kind == "auto" and answered:
        return ()  # the tool already answered: reply in text, so agent loops terminate
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use"):
        return tuple(tools[:1])
    return tuple(tools)
