"""Pure reshaping of litellm's results into OpenAI's wire format, and of OpenAI bodies into litellm kwargs.

litellm returns OpenAI-*like* objects that carry its own extras (``provider_specific_fields``,
``thinking_blocks``, an ``index`` on non-streamed tool calls, a fresh ``id`` per Gemini stream chunk,
``content: ""`` beside tool-call deltas…). Clients of the gateway are promised OpenAI's schema, so
every answer is rebuilt field by field from an allow-list instead of being dumped as litellm made it.

Everything here works on plain dicts (``model_dump()`` output) and never imports litellm, so it is
tested with tables of cases and costs nothing to import.
"""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Any

from gateway.core.types import Usage

# OpenAI chat parameters forwarded to litellm. The allow-list is a safety boundary, not tidiness:
# litellm reads its own configuration from the same keyword arguments (``api_base``, ``api_key``,
# ``mock_response``, ``custom_llm_provider``, ``extra_headers``…), so forwarding arbitrary body fields
# would let a caller redirect the gateway's vendor key to a server of their choosing. ``metadata`` and
# ``store`` are left out on purpose: litellm treats ``metadata`` as its own logging context, and
# stored completions are an OpenAI-only feature.
CHAT_PARAMS: frozenset[str] = frozenset(
    {
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "response_format",
        "n",
        "seed",
        "stop",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "user",
        "reasoning_effort",
        "modalities",
        "audio",
        "prediction",
        "service_tier",
        "web_search_options",
    }
)
EMBEDDING_PARAMS: frozenset[str] = frozenset({"input", "dimensions", "user"})

FINISH_REASONS: frozenset[str] = frozenset(
    {"stop", "length", "tool_calls", "content_filter", "function_call"}
)
# Vendor-native stop reasons litellm occasionally lets through unmapped.
_FINISH_ALIASES: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
    "refusal": "content_filter",
}


def forwarded_params(body: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """The caller's parameters litellm may see; ``None`` values dropped as if never sent."""
    return {k: v for k, v in body.items() if k in allowed and v is not None}


def finish_reason(value: Any) -> str | None:
    """Map any stop reason onto OpenAI's five values (``None`` stays ``None`` for mid-stream chunks)."""
    if value is None:
        return None
    reason = str(value).lower()
    if reason in FINISH_REASONS:
        return reason
    return _FINISH_ALIASES.get(reason, "stop")


def usage_dict(raw: Any) -> dict[str, Any] | None:
    """OpenAI's usage object: the three counts, plus cached/reasoning token details when known."""
    if not isinstance(raw, dict):
        return None
    prompt = int(raw.get("prompt_tokens") or 0)
    completion = int(raw.get("completion_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(raw.get("total_tokens") or prompt + completion),
    }
    cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": int(cached)}
    reasoning = (raw.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": int(reasoning)}
    return out


def usage_of(shaped: dict[str, Any]) -> Usage | None:
    return Usage.from_openai(shaped.get("usage"))


def _tool_call(raw: dict[str, Any]) -> dict[str, Any]:
    function = raw.get("function") or {}
    return {
        "id": raw.get("id") or "",
        "type": "function",
        "function": {"name": function.get("name") or "", "arguments": function.get("arguments") or ""},
    }


def _message(raw: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": raw.get("content"), "refusal": None}
    tool_calls = raw.get("tool_calls")
    if tool_calls:
        message["tool_calls"] = [_tool_call(tc) for tc in tool_calls]
    if raw.get("reasoning_content"):
        # Not in OpenAI's schema but the de-facto extension (DeepSeek, vLLM); SDKs keep extra fields.
        message["reasoning_content"] = raw["reasoning_content"]
    return message


def chat_completion(raw: dict[str, Any], fallback_model: str) -> dict[str, Any]:
    """A litellm ``ModelResponse`` (dumped) as an OpenAI ``chat.completion`` object."""
    out: dict[str, Any] = {
        "id": raw.get("id") or "chatcmpl-litellm",
        "object": "chat.completion",
        "created": int(raw.get("created") or 0),
        "model": raw.get("model") or fallback_model,
        "system_fingerprint": raw.get("system_fingerprint"),
        "choices": [
            {
                "index": choice.get("index", i),
                "message": _message(choice.get("message") or {}),
                "finish_reason": finish_reason(choice.get("finish_reason")) or "stop",
                "logprobs": choice.get("logprobs"),
            }
            for i, choice in enumerate(raw.get("choices") or ())
        ],
    }
    usage = usage_dict(raw.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def _delta_tool_call(raw: dict[str, Any], position: int) -> dict[str, Any]:
    function = raw.get("function") or {}
    call: dict[str, Any] = {"index": raw.get("index", position)}
    if raw.get("id"):
        # OpenAI sends id, type and name only on a call's first delta; later ones carry arguments only.
        call["id"] = raw["id"]
        call["type"] = "function"
    fn: dict[str, Any] = {"arguments": function.get("arguments") or ""}
    if function.get("name"):
        fn["name"] = function["name"]
    call["function"] = fn
    return call


def _delta(raw: dict[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if raw.get("role"):
        delta["role"] = "assistant"
    content = raw.get("content")
    # litellm puts ``content: ""`` beside tool-call deltas; OpenAI only sends "" on the role chunk.
    if content or (content is not None and "role" in delta):
        delta["content"] = content
    if raw.get("tool_calls"):
        delta["tool_calls"] = [_delta_tool_call(tc, i) for i, tc in enumerate(raw["tool_calls"])]
    if raw.get("reasoning_content"):
        delta["reasoning_content"] = raw["reasoning_content"]
    return delta


class ChunkShaper:
    """Rebuilds one stream's litellm chunks as ``chat.completion.chunk`` dicts.

    Holds the stream's identity (litellm gives Gemini chunks a fresh ``id`` each), so every chunk
    of one answer carries the same ``id``, ``created`` and ``model``, as OpenAI's do.
    """

    __slots__ = ("id", "created", "model", "finished")

    def __init__(self, fallback_model: str) -> None:
        self.id: str | None = None
        self.created = 0
        self.model = fallback_model
        self.finished = False
        """Whether a choice has carried a finish reason yet (a stream without one was cut off)."""

    def shape(self, raw: dict[str, Any]) -> dict[str, Any] | None:
        """The OpenAI chunk for one litellm chunk, or ``None`` when it says nothing."""
        if self.id is None:
            self.id = raw.get("id") or "chatcmpl-litellm"
            self.created = int(raw.get("created") or 0)
            self.model = raw.get("model") or self.model
        head = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        choices = raw.get("choices") or []
        if not choices:
            usage = usage_dict(raw.get("usage"))
            # OpenAI's usage chunk (stream_options.include_usage) has an empty choices list.
            return {**head, "choices": [], "usage": usage} if usage is not None else None
        shaped = [
            {
                "index": choice.get("index", i),
                "delta": _delta(choice.get("delta") or {}),
                "finish_reason": finish_reason(choice.get("finish_reason")),
                "logprobs": choice.get("logprobs"),
            }
            for i, choice in enumerate(choices)
        ]
        if any(choice["finish_reason"] for choice in shaped):
            self.finished = True
        return {**head, "choices": shaped}


def _base64_floats(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32 values, base64-encoded."""
    values = array("f", vector)
    if values.itemsize != 4:  # pragma: no cover - every platform we run on has 4-byte C floats
        raise ValueError("float32 encoding needs 4-byte floats")
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def embeddings(raw: dict[str, Any], fallback_model: str, encoding_format: str | None) -> dict[str, Any]:
    """A litellm ``EmbeddingResponse`` (dumped) as OpenAI's embeddings list."""
    data = []
    for i, item in enumerate(raw.get("data") or ()):
        vector = item.get("embedding") or []
        if encoding_format == "base64" and isinstance(vector, list):
            vector = _base64_floats(vector)
        data.append({"object": "embedding", "index": item.get("index", i), "embedding": vector})
    usage = usage_dict(raw.get("usage")) or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "object": "list",
        "data": data,
        "model": raw.get("model") or fallback_model,
        "usage": {"prompt_tokens": usage["prompt_tokens"], "total_tokens": usage["prompt_tokens"]},
    }
