"""``POST /v1/chat/completions`` in OpenAI's wire format: ``chat.completion`` and its SSE chunks."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

import orjson

from gateway.simulator.generation import Answer, Choice, Prompt, Tool, generate, token_logprob
from gateway.simulator.wire import DONE_EVENT, BadRequest, openai_error, sse_data

SYSTEM_FINGERPRINT = "fp_simulator"
_ALTERNATIVES = (" the", " a", " and", " of", " to", " it", " is", " in", " that", " for")


@dataclass(slots=True)
class ChatRequest:
    prompt: Prompt
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    top_logprobs: int = 0


class OpenAIChat:
    """Parses chat requests and renders answers exactly as OpenAI shapes them."""

    error = staticmethod(openai_error)

    def parse(self, body: dict[str, Any], model: str) -> ChatRequest:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty array", param="messages")
        if not all(isinstance(m, dict) for m in messages):
            raise BadRequest("each message must be an object", param="messages")
        prompt = Prompt(
            model=model,
            text="\n".join(message_text(m.get("content")) for m in messages),
            n=int_field(body, "n", 1, low=1, high=128),
            call_tools=_tools_to_call(body, last_role=messages[-1].get("role")),
            stop=stop_strings(body.get("stop")),
            max_tokens=max_tokens_field(body),
            seed=body.get("seed") if isinstance(body.get("seed"), int) else None,
        )
        _apply_response_format(prompt, body.get("response_format"))
        stream_options = body.get("stream_options") or {}
        return ChatRequest(
            prompt=prompt,
            stream=bool(body.get("stream")),
            include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")),
            logprobs=bool(body.get("logprobs")),
            top_logprobs=int_field(body, "top_logprobs", 0, low=0, high=20),
        )

    def answer(self, request: ChatRequest, output_tokens: int, seed: int) -> Answer:
        return generate(request.prompt, output_tokens, seed)

    def render(self, answer: Answer, request: ChatRequest) -> bytes:
        return orjson.dumps(
            {
                "id": _completion_id(),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.prompt.model,
                "choices": [_full_choice(choice, request) for choice in answer.choices],
                "usage": openai_usage(answer),
                "service_tier": "default",
                "system_fingerprint": SYSTEM_FINGERPRINT,
            }
        )

    def events(self, answer: Answer, request: ChatRequest) -> list[bytes]:
        head: dict[str, Any] = {
            "id": _completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.prompt.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if request.include_usage:
            head["usage"] = None
        per_choice = [_choice_deltas(choice, request) for choice in answer.choices]
        events = [
            sse_data({**head, "choices": [delta]})
            for step in zip_longest(*per_choice)
            for delta in step
            if delta is not None
        ]
        if request.include_usage:
            events.append(sse_data({**head, "choices": [], "usage": openai_usage(answer)}))
        events.append(DONE_EVENT)
        return events


def message_text(content: Any) -> str:
    """Text of an OpenAI message ``content``: a string or a list of parts (non-text parts skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def openai_usage(answer: Answer) -> dict[str, Any]:
    completion = answer.completion_tokens
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": answer.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def logprob_entry(token: str, top: int) -> dict[str, Any]:
    """One ``logprobs.content`` entry: the token, its logprob, bytes and ``top`` alternatives."""
    logprob = token_logprob(token)
    entry: dict[str, Any] = {"token": token, "logprob": logprob, "bytes": list(token.encode())}
    alternatives = [{"token": token, "logprob": logprob, "bytes": list(token.encode())}]
    for rank, alt in enumerate(a for a in _ALTERNATIVES if a != token):
        if len(alternatives) >= top:
            break
        alternatives.append(
            {"token": alt, "logprob": round(logprob - 1.0 - rank, 4), "bytes": list(alt.encode())}
        )
    entry["top_logprobs"] = alternatives[:top]
    return entry


def _full_choice(choice: Choice, request: ChatRequest) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if choice.tool_calls else choice.text,
        "refusal": None,
        "annotations": [],
    }
    if choice.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{c.id}", "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in choice.tool_calls
        ]
    logprobs = None
    if request.logprobs:
        logprobs = {
            "content": [logprob_entry(t, request.top_logprobs) for t in choice.tokens],
            "refusal": None,
        }
    return {"index": choice.index, "message": message, "logprobs": logprobs, "finish_reason": choice.finish}


def _choice_deltas(choice: Choice, request: ChatRequest) -> list[dict[str, Any]]:
    """The ``choices[0]`` items of every chunk for one choice, in order."""
    i = choice.index
    first_content = None if choice.tool_calls else ""
    deltas = [_delta(i, {"role": "assistant", "content": first_content, "refusal": None})]
    for token in choice.tokens:
        logprobs = None
        if request.logprobs:
            logprobs = {"content": [logprob_entry(token, request.top_logprobs)], "refusal": None}
        deltas.append(_delta(i, {"content": token}, logprobs=logprobs))
    for k, call in enumerate(choice.tool_calls):
        header = {
            "index": k,
            "id": f"call_{call.id}",
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        deltas.append(_delta(i, {"tool_calls": [header]}))
        deltas.extend(
            _delta(i, {"tool_calls": [{"index": k, "function": {"arguments": fragment}}]})
            for fragment in call.fragments
        )
    deltas.append(_delta(i, {}, finish_reason=choice.finish))
    return deltas


def _delta(
    index: int, delta: dict[str, Any], *, finish_reason: str | None = None, logprobs: Any = None
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}


def _tools_to_call(body: dict[str, Any], *, last_role: Any) -> tuple[Tool, ...]:
    raw_tools = body.get("tools") or []
    if not isinstance(raw_tools, list):
        raise BadRequest("'tools' must be an array", param="tools")
    tools = []
    for raw in raw_tools:
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest("each tool needs function.name", param="tools")
        tools.append(Tool(function["name"], function.get("parameters") or {}))
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return ()
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        named = tuple(t for t in tools if t.name == name)
        if not named:
            raise BadRequest(f"tool_choice names unknown function {name!r}", param="tool_choice")
        return named[:1]
    if choice == "auto" and last_role == "tool":
        return ()  # the tool already answered: reply in text, so agent loops terminate
    return tuple(tools) if body.get("parallel_tool_calls", True) is not False else tuple(tools[:1])


def _apply_response_format(prompt: Prompt, response_format: Any) -> None:
    if not isinstance(response_format, dict):
        return
    kind = response_format.get("type")
    if kind == "json_object":
        prompt.json_mode = True
    elif kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        prompt.json_schema = schema if isinstance(schema, dict) else {"type": "object"}


def stop_strings(stop: Any) -> tuple[str, ...]:
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list):
        return tuple(s for s in stop if isinstance(s, str) and s)
    return ()


def max_tokens_field(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or value < 1:
        raise BadRequest("max_tokens must be a positive integer", param="max_tokens")
    return value


def int_field(body: dict[str, Any], key: str, default: int, *, low: int, high: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"'{key}' must be an integer between {low} and {high}", param=key)
    return value


def _completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]
