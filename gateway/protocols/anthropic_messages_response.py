"""An OpenAI chat completion → an Anthropic Messages response (the stream is ``anthropic_messages_stream``).

Reasoning text (``reasoning_content``, or ``reasoning`` as newer vLLM names it) becomes a ``thinking``
block first, then the text, then one ``tool_use`` block per tool call. Finish reasons map to stop
reasons (a chat ``refusal`` is text with ``stop_reason: refusal``); a ``stop`` that ended on one of
the client's stop sequences (vLLM and SGLang name the one in ``choices[].stop_reason``) is reported
as ``stop_sequence``. Usage follows Anthropic's accounting:
``input_tokens`` excludes tokens read from the prompt cache, which are ``cache_read_input_tokens``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from gateway.core.errors import UpstreamProtocolError
from gateway.core.types import Usage
from gateway.protocols.chat_chunks import as_dict

_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                 "content_filter": "refusal"}


def chat_to_message(
    completion: dict[str, Any], *, model: str, message_id: str | None = None, stop_sequences: Sequence[str] = ()
) -> dict[str, Any]:
    """The Messages response for a chat completion; ``model`` is the name the client asked for."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("The upstream answered without a choice.")
    choice = choices[0]
    message = as_dict(choice.get("message"))
    content: list[dict[str, Any]] = []
    reasoning = reasoning_text(message)
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    for name in ("content", "refusal"):  # a refusal is the text the client shows, its stop reason says why
        if isinstance(message.get(name), str) and message[name]:
            content.append({"type": "text", "text": message[name]})
            break
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        function = as_dict(call.get("function"))
        content.append({"type": "tool_use", "id": str(call.get("id") or ""), "name": str(function.get("name") or ""),
                        "input": tool_input(function.get("arguments"))})
    reason, sequence = stop_reason(choice, stop_sequences, refused=isinstance(message.get("refusal"), str) and bool(message["refusal"]))
    return {
        "id": message_id or f"msg_{completion.get('id') or 'gateway'}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_from_chat(completion.get("usage")),
    }


def stop_reason(choice: dict[str, Any], stop_sequences: Sequence[str], *, refused: bool = False) -> tuple[str, str | None]:
    """Anthropic's ``stop_reason`` and ``stop_sequence`` for a chat choice's finish (``refused``: the
    model answered with a chat ``refusal``, which OpenAI ends with an ordinary ``stop``)."""
    finish = choice.get("finish_reason")
    if refused:
        return "refusal", None
    matched = choice.get("stop_reason")
    if finish == "stop" and isinstance(matched, str) and matched in stop_sequences:
        return "stop_sequence", matched
    return _STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn", None


def reasoning_text(message: dict[str, Any]) -> str:
    for name in ("reasoning_content", "reasoning"):
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's ``input`` must be ({} when they are not one)."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def usage_from_chat(usage: Any) -> dict[str, Any]:
    """Anthropic's usage object from an OpenAI chat ``usage`` (zeros when the upstream sent none)."""
    if not isinstance(usage, dict):
        usage = {}
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = min(prompt, _int(details.get("cached_tokens"))) if isinstance(details, dict) else 0
    return {"input_tokens": prompt - cached, "output_tokens": _int(usage.get("completion_tokens")),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def usage_from_gateway(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage object from the gateway's ``Usage`` (a cached answer, an accounted stream)."""
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def count_tokens_response(input_tokens: int) -> dict[str, int]:
    """The body of ``POST /v1/messages/count_tokens``."""
    return {"input_tokens": input_tokens}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
