"""Play a complete ``chat.completion`` / ``text_completion`` back as an OpenAI SSE stream.

The inverse of ``stream_fold.completion_from_stream``: a role chunk, the content in a few pieces (one
chunk per token when logprobs spell the content, as a real stream does), streamed strings such as
``reasoning_content`` and ``refusal``, each tool call as a header fragment followed by its argument
pieces, a finish chunk carrying ``finish_reason`` and any other choice fields, the usage chunk when
asked for (with ``usage: null`` on every other chunk, as OpenAI sends it), and ``data: [DONE]``.
Choices of an ``n > 1`` answer are interleaved. Every field of the completion is preserved, so folding
the stream again gives back the same object.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

import orjson

_PIECES = 4

def stream_from_completion(completion: dict[str, Any], include_usage: bool) -> list[bytes]:
    """A cached completion as SSE events: role chunk, content in a few pieces, tool calls, finish, usage, [DONE]."""
    chat = completion.get("object") != "text_completion" and not any(
        "text" in c and "message" not in c for c in completion.get("choices") or ()
    )
    head: dict[str, Any] = {"id": completion.get("id"), "object": "chat.completion.chunk" if chat else "text_completion"}
    head.update((k, v) for k, v in completion.items() if k not in ("id", "object", "choices", "usage"))
    if include_usage:
        head["usage"] = None
    per_choice = [_chat_parts(c) if chat else _text_parts(c) for c in completion.get("choices") or ()]
    events = [
        _event({**head, "choices": [part]}) for step in zip_longest(*per_choice) for part in step if part is not None
    ]
    if include_usage:
        events.append(_event({**head, "choices": [], "usage": completion.get("usage")}))
    events.append(b"data: [DONE]\n\n")
    return events


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _split(text: str, pieces: int = _PIECES) -> list[str]:
    if not text:
        return []
    size = -(-len(text) // pieces)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _aligned(text: str | None, tokens: list[Any]) -> bool:
    return isinstance(text, str) and bool(tokens) and "".join(str(t) for t in tokens) == text


def _chat_parts(choice: dict[str, Any]) -> list[dict[str, Any]]:
    index = choice.get("index", 0)
    message = dict(choice.get("message") or {})
    content, calls = message.pop("content", None), message.pop("tool_calls", None) or []
    logprobs = choice.get("logprobs")
    role_delta: dict[str, Any] = {"role": message.pop("role", "assistant"), "content": "" if isinstance(content, str) else None}
    streamed: list[tuple[str, str]] = []  # non-empty strings (reasoning_content, refusal...) go in pieces
    for key, value in message.items():
        if isinstance(value, str) and value:
            streamed.append((key, value))
            if key == "refusal":
                role_delta["refusal"] = None  # as OpenAI's first chunk has it
        else:
            role_delta[key] = value
    parts = [_chat_delta(index, role_delta)]
    parts += [_chat_delta(index, {key: piece}) for key, value in streamed if key != "refusal" for piece in _split(value)]
    parts += _content_parts(index, content, logprobs, parts)
    parts += [_chat_delta(index, {"refusal": piece}) for key, value in streamed if key == "refusal" for piece in _split(value)]
    for k, call in enumerate(calls):
        function = call.get("function") or {}
        header = {key: value for key, value in call.items() if key != "function"}
        header = {"index": k, **header, "function": {**function, "arguments": ""}}
        parts.append(_chat_delta(index, {"tool_calls": [header]}))
        parts += [
            _chat_delta(index, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
            for piece in _split(function.get("arguments") or "")
        ]
    parts.append(_finish(choice, {"index": index, "delta": {}, "logprobs": None}))
    return parts


def _chat_delta(index: int, delta: dict[str, Any], logprobs: Any = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}


def _content_parts(index: int, content: Any, logprobs: Any, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Content pieces; with logprobs whose tokens spell the content, one chunk per token like a real stream."""
    entries = logprobs.get("content") if isinstance(logprobs, dict) else None
    if isinstance(entries, list) and _aligned(content, [e.get("token", "") for e in entries]):
        scalars = {k: v for k, v in logprobs.items() if k != "content" and not isinstance(v, list)}
        lists = {k: v for k, v in logprobs.items() if k != "content" and isinstance(v, list)}
        out = [_chat_delta(index, {"content": e.get("token", "")}, {"content": [e], **scalars}) for e in entries]
        out[0]["logprobs"].update(lists)  # e.g. refusal logprobs: once, not per token
        return out
    pieces = _split(content) if isinstance(content, str) else []
    out = [_chat_delta(index, {"content": piece}) for piece in pieces]
    if logprobs is not None:  # not spelled out by tokens: all of it on the first chunk that carries anything
        (out[0] if out else parts[0])["logprobs"] = logprobs
    return out


def _finish(choice: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    extra = {k: v for k, v in choice.items() if k not in ("index", "message", "text", "logprobs", "finish_reason")}
    return {**part, "finish_reason": choice.get("finish_reason"), **extra}


def _text_parts(choice: dict[str, Any]) -> list[dict[str, Any]]:
    index = choice.get("index", 0)
    text = choice.get("text") or ""
    logprobs = choice.get("logprobs")
    tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
    if isinstance(logprobs, dict) and isinstance(tokens, list) and _aligned(text, tokens):
        parts = [
            {"text": token, "index": index, "logprobs": _slice(logprobs, j), "finish_reason": None}
            for j, token in enumerate(tokens)
        ]
    else:
        parts = [{"text": piece, "index": index, "logprobs": None, "finish_reason": None} for piece in _split(text)]
        if logprobs is not None:
            if not parts:
                parts.append({"text": "", "index": index, "logprobs": None, "finish_reason": None})
            parts[0]["logprobs"] = logprobs
    parts.append(_finish(choice, {"text": "", "index": index, "logprobs": None}))
    return parts


def _slice(logprobs: dict[str, Any], j: int) -> dict[str, Any]:
    return {k: v[j : j + 1] if isinstance(v, list) else v for k, v in logprobs.items()}
