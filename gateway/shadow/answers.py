"""What an answer says, whatever API it came in: its text, its tool calls, an explicit refusal.

The primary may have answered in any upstream API (OpenAI chat or completions, Anthropic Messages,
OpenAI Responses), streamed or not; the shadow always answers one non-streamed body. Both are read into
one ``Answer`` so that comparison never needs to know the wire format. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.core.sse import SSEDecodeError, iter_events
from gateway.core.types import Endpoint

_REFUSING_FINISH = frozenset({"content_filter", "refusal"})


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str
    """The arguments as the model wrote them (a JSON document, when the model got it right)."""


@dataclass(frozen=True, slots=True)
class Answer:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    refused: bool = False
    """The API itself said the model refused: OpenAI's ``refusal``, a ``content_filter``/``refusal`` finish."""


def answer_of(endpoint: Endpoint, body: dict[str, Any]) -> Answer | None:
    """The answer in a non-streamed body of ``endpoint``'s API; ``None`` when the body holds none."""
    if endpoint in (Endpoint.CHAT, Endpoint.COMPLETIONS):
        return _chat(body)
    if endpoint is Endpoint.MESSAGES:
        return _message(body)
    if endpoint is Endpoint.RESPONSES:
        return _response(body)
    return None


def answer_of_stream(endpoint: Endpoint, events: list[bytes]) -> Answer | None:
    """The answer a complete stream of ``endpoint``'s API carried; ``None`` when it is incomplete."""
    payloads, done = _payloads(events)
    if endpoint in (Endpoint.CHAT, Endpoint.COMPLETIONS):
        return _chat_stream(payloads) if done else None
    if endpoint is Endpoint.RESPONSES:
        for payload in reversed(payloads):
            if payload.get("type") in ("response.completed", "response.incomplete"):
                response = payload.get("response")
                return _response(response) if isinstance(response, dict) else None
        return None
    if endpoint is Endpoint.MESSAGES:
        return _message_stream(payloads)
    return None


def _chat(body: dict[str, Any]) -> Answer | None:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    choice = choices[0]
    refused = choice.get("finish_reason") in _REFUSING_FINISH
    if isinstance(choice.get("text"), str):  # a legacy completion
        return Answer(choice["text"], refused=refused)
    message = choice.get("message")
    if not isinstance(message, dict):
        return None
    calls = []
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            calls.append(ToolCall(str(function.get("name") or ""), _text(function.get("arguments"))))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls.append(ToolCall(str(legacy.get("name") or ""), _text(legacy.get("arguments"))))
    refusal = message.get("refusal")
    return Answer(_content_text(message.get("content")), tuple(calls), refused or bool(refusal))


def _message(body: dict[str, Any]) -> Answer | None:
    content = body.get("content")
    if not isinstance(content, list):
        return None
    texts, calls = [], []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append(ToolCall(str(block.get("name") or ""), orjson.dumps(block.get("input", {})).decode()))
    return Answer("".join(texts), tuple(calls), body.get("stop_reason") == "refusal")


def _response(body: dict[str, Any]) -> Answer | None:
    output = body.get("output")
    if not isinstance(output, list):
        return None
    texts, calls, refused = [], [], False
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            calls.append(ToolCall(str(item.get("name") or ""), _text(item.get("arguments"))))
        elif item.get("type") == "message":
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "refusal":
                    refused = True
    return Answer("".join(texts), tuple(calls), refused)


def _chat_stream(payloads: list[dict[str, Any]]) -> Answer | None:
    """Chat (or legacy completion) chunks folded: the first choice's text and tool-call fragments by index.
    Only what comparison needs (``state.stream_fold`` rebuilds the whole completion, at several times the cost)."""
    texts: list[str] = []
    calls: dict[int, list[Any]] = {}
    finish = None
    refusal = False
    for payload in payloads:
        if "error" in payload:
            return None
        for choice in payload.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            finish = choice.get("finish_reason") or finish
            if isinstance(choice.get("text"), str):
                texts.append(choice["text"])
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            if isinstance(delta.get("content"), str):
                texts.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    continue
                name_and_args = calls.setdefault(int(call.get("index") or 0), ["", []])
                name_and_args[0] = name_and_args[0] or str(function.get("name") or "")
                if isinstance(function.get("arguments"), str):
                    name_and_args[1].append(function["arguments"])
            refusal = refusal or bool(delta.get("refusal"))
    if finish is None:
        return None  # never finished: incomplete
    tool_calls = tuple(ToolCall(name, "".join(args)) for _, (name, args) in sorted(calls.items()))
    return Answer("".join(texts), tool_calls, refusal or finish in _REFUSING_FINISH)


def _message_stream(payloads: list[dict[str, Any]]) -> Answer | None:
    """Anthropic's events folded: text and tool input deltas by block index, until ``message_stop``."""
    blocks: dict[int, dict[str, Any]] = {}
    stop_reason = None
    finished = False
    for payload in payloads:
        kind, index = payload.get("type"), payload.get("index")
        if kind == "content_block_start" and isinstance(index, int) and isinstance(payload.get("content_block"), dict):
            start = payload["content_block"]
            blocks[index] = {"type": start.get("type"), "name": start.get("name"), "text": [start.get("text") or ""],
                             "json": []}
        elif kind == "content_block_delta" and index in blocks and isinstance(payload.get("delta"), dict):
            delta = payload["delta"]
            if isinstance(delta.get("text"), str):
                blocks[index]["text"].append(delta["text"])
            if isinstance(delta.get("partial_json"), str):
                blocks[index]["json"].append(delta["partial_json"])
        elif kind == "message_delta" and isinstance(payload.get("delta"), dict):
            stop_reason = payload["delta"].get("stop_reason")
        elif kind == "message_stop":
            finished = True
    if not finished:
        return None
    texts, calls = [], []
    for _, block in sorted(blocks.items()):
        if block["type"] == "text":
            texts.append("".join(block["text"]))
        elif block["type"] == "tool_use":
            calls.append(ToolCall(str(block["name"] or ""), "".join(block["json"]) or "{}"))
    return Answer("".join(texts), tuple(calls), stop_reason == "refusal")


def _payloads(events: list[bytes]) -> tuple[list[dict[str, Any]], bool]:
    """The JSON payloads of a stream, and whether it ended with ``[DONE]``."""
    out: list[dict[str, Any]] = []
    try:
        decoded = iter_events(b"".join(events))
    except SSEDecodeError:
        return out, False
    done = False
    for event in decoded:
        data = event.data
        if data is None or data[:1] != b"{":
            done = done or (data is not None and data.strip() == b"[DONE]")
            continue
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(payload, dict):
            out.append(payload)
    return out, done


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode() if value is not None else ""
