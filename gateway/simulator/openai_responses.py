"""``POST /v1/responses``: OpenAI's Responses API, a ``response`` object or its named SSE events.

Stream, each event ``event: <type>`` + ``data: {"type", "sequence_number", ...}`` counting from 0:
``response.created``, ``response.in_progress``; per output item ``response.output_item.added``,
then for a reasoning summary ``response.reasoning_summary_part.added``,
``response.reasoning_summary_text.delta``... and ``.done``, ``response.reasoning_summary_part.done``;
for a message ``response.content_part.added``, ``response.output_text.delta``...,
``response.output_text.done``, ``response.content_part.done``, for a function call
``response.function_call_arguments.delta``... and ``.done``; ``response.output_item.done``; last
``response.completed``, or ``response.incomplete`` when ``max_output_tokens`` cut the answer.
The request side (input items, tools, checks) is in ``openai_responses_request``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import orjson

from gateway.simulator.generation import Answer, Choice, generate
from gateway.simulator.openai_responses_reasoning import SUMMARY_WORDS, reasoning_item
from gateway.simulator.openai_responses_request import ResponsesRequest, parse_request
from gateway.simulator.wire import openai_error, sse_named


class OpenAIResponses:
    """Parses Responses requests and renders answers as OpenAI shapes them."""

    error = staticmethod(openai_error)

    def parse(self, body: dict[str, Any], model: str) -> ResponsesRequest:
        return parse_request(body, model)

    def answer(self, request: ResponsesRequest, output_tokens: int, seed: int) -> Answer:
        return generate(request.prompt, output_tokens, seed)

    def render(self, answer: Answer, request: ResponsesRequest) -> bytes:
        output = _output_items(answer.choices[0], request)
        return orjson.dumps(_finished(_response_head(request), answer, request, output))

    def events(self, answer: Answer, request: ResponsesRequest) -> list[bytes]:
        choice = answer.choices[0]
        output = _output_items(choice, request)
        head = _response_head(request)
        stream = _EventStream(request.obfuscate)
        stream.add("response.created", response=head)
        stream.add("response.in_progress", response=head)
        calls = iter(choice.tool_calls)
        for index, item in enumerate(output):
            if item["type"] == "reasoning":
                _reasoning_events(stream, index, item)
            elif item["type"] == "message":
                _message_events(stream, index, item, choice.tokens)
            else:
                _function_call_events(stream, index, item, next(calls).fragments)
        final = _finished(head, answer, request, output)
        stream.add(f"response.{final['status']}", response=final)
        return stream.events


class _EventStream:
    """Numbers the events (``sequence_number``) and pads deltas the way OpenAI does."""

    def __init__(self, obfuscate: bool) -> None:
        self.events: list[bytes] = []
        self._obfuscate = obfuscate

    def add(self, type_: str, **fields: Any) -> None:
        self.events.append(sse_named(type_, {"type": type_, "sequence_number": len(self.events), **fields}))

    def delta(self, type_: str, where: dict[str, Any], delta: str, **extra: Any) -> None:
        fields = {**where, "delta": delta, **extra}
        if self._obfuscate:
            fields["obfuscation"] = _padding(delta)
        self.add(type_, **fields)


def _reasoning_events(stream: _EventStream, index: int, item: dict[str, Any]) -> None:
    where = {"item_id": item["id"], "output_index": index, "summary_index": 0}
    added = {"id": item["id"], "type": "reasoning", "summary": []}
    stream.add("response.output_item.added", output_index=index, item=added)
    for summary_index, part in enumerate(item["summary"]):
        where["summary_index"] = summary_index
        stream.add("response.reasoning_summary_part.added", **where, part={**part, "text": ""})
        for word in SUMMARY_WORDS:
            stream.delta("response.reasoning_summary_text.delta", where, word)
        stream.add("response.reasoning_summary_text.done", **where, text=part["text"])
        stream.add("response.reasoning_summary_part.done", **where, part=part)
    stream.add("response.output_item.done", output_index=index, item=item)


def _message_events(stream: _EventStream, index: int, item: dict[str, Any], tokens: list[str]) -> None:
    where = {"item_id": item["id"], "output_index": index, "content_index": 0}
    [part] = item["content"]
    stream.add(
        "response.output_item.added",
        output_index=index,
        item={**item, "status": "in_progress", "content": []},
    )
    stream.add("response.content_part.added", **where, part={**part, "text": ""})
    for token in tokens:
        stream.delta("response.output_text.delta", where, token, logprobs=[])
    stream.add("response.output_text.done", **where, text=part["text"], logprobs=[])
    stream.add("response.content_part.done", **where, part=part)
    stream.add("response.output_item.done", output_index=index, item=item)


def _function_call_events(
    stream: _EventStream, index: int, item: dict[str, Any], fragments: list[str]
) -> None:
    where = {"item_id": item["id"], "output_index": index}
    stream.add(
        "response.output_item.added",
        output_index=index,
        item={**item, "status": "in_progress", "arguments": ""},
    )
    for fragment in fragments:
        stream.delta("response.function_call_arguments.delta", where, fragment)
    stream.add(
        "response.function_call_arguments.done", **where, name=item["name"], arguments=item["arguments"]
    )
    stream.add("response.output_item.done", output_index=index, item=item)


def _response_head(request: ResponsesRequest) -> dict[str, Any]:
    """The response object as it stands before any output: the first two events carry this."""
    echo = request.echo
    return {
        "id": "resp_" + secrets.token_hex(24),
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": echo["instructions"],
        "max_output_tokens": echo["max_output_tokens"],
        "max_tool_calls": echo["max_tool_calls"],
        "model": request.prompt.model,
        "output": [],
        "parallel_tool_calls": echo["parallel_tool_calls"],
        "previous_response_id": None,
        **{key: echo[key] for key in _ECHOED_AFTER_OUTPUT},
        "usage": None,
        "user": echo["user"],
        "metadata": echo["metadata"],
    }


_ECHOED_AFTER_OUTPUT = (
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
)


def _finished(
    head: dict[str, Any], answer: Answer, request: ResponsesRequest, output: list[dict[str, Any]]
) -> dict[str, Any]:
    cut = answer.choices[0].finish == "length"
    return {
        **head,
        "status": "incomplete" if cut else "completed",
        "completed_at": None if cut else int(time.time()),
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "output": output,
        "usage": responses_usage(answer, request.reasoning.tokens if request.reasoning else 0),
    }


def responses_usage(answer: Answer, reasoning_tokens: int = 0) -> dict[str, Any]:
    output_tokens = answer.completion_tokens + reasoning_tokens
    return {
        "input_tokens": answer.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": answer.prompt_tokens + output_tokens,
    }


def _output_items(choice: Choice, request: ResponsesRequest) -> list[dict[str, Any]]:
    """The finished output items, ids included; a stream's events all name these same items."""
    items = []
    if request.reasoning is not None:
        items.append(reasoning_item(request.reasoning, _new_id("rs")))
    items.extend(
        {
            "id": _new_id("fc"),
            "type": "function_call",
            "status": "completed",
            "arguments": call.arguments,
            "call_id": f"call_{call.id}",
            "name": call.name,
        }
        for call in choice.tool_calls
    )
    if choice.tool_calls or (choice.finish == "length" and not choice.tokens):
        return items  # calls only; or reasoning spent the whole budget, leaving no visible answer
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": choice.text}
    status = "incomplete" if choice.finish == "length" else "completed"
    items.append(
        {"id": _new_id("msg"), "type": "message", "status": status, "content": [part], "role": "assistant"}
    )
    return items


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def _padding(delta: str) -> str:
    """Filler that evens out event sizes (OpenAI's defence against length side channels)."""
    width = 16 - len(delta) % 16
    return hashlib.blake2b(delta.encode(), digest_size=16).hexdigest()[:width]
