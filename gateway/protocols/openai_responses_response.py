"""An OpenAI chat completion → an OpenAI Responses ``response`` object (the stream is ``openai_responses_stream``).

Output items, in order: a ``reasoning`` item (the upstream's ``reasoning_content``, as ``reasoning_text``
content), a ``message`` with one ``output_text`` part (or a ``refusal``), then one ``function_call`` per
tool call — or a ``custom_tool_call`` for a custom tool, with ``namespace`` for a grouped one. A
``length`` finish makes the response ``incomplete`` (``max_output_tokens``), ``content_filter`` too
(``content_filter``). The request's settings are echoed as OpenAI echoes them; ``store`` is always
false: the gateway keeps nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.core.errors import UpstreamProtocolError
from gateway.core.types import Usage
from gateway.protocols.chat_chunks import as_dict
from gateway.protocols.openai_responses_tools import ToolOrigin, tool_origins

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(frozen=True, slots=True)
class ResponsesContext:
    """What the answer's translation needs from the request: ids, the echoed settings, tool names."""

    response_id: str
    created_at: int
    request: dict[str, Any]
    tools: dict[str, ToolOrigin] = field(default_factory=dict)

    @classmethod
    def for_request(cls, request: dict[str, Any], *, response_id: str, created_at: int) -> ResponsesContext:
        return cls(response_id, created_at, request, tool_origins(request.get("tools")))

    def item_id(self, prefix: str, index: int) -> str:
        return f"{prefix}_{self.response_id.removeprefix('resp_')}{index:03d}"

    def envelope(self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
                 incomplete: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``response`` object in any state (``in_progress`` ones carry no usage yet)."""
        req = self.request
        reasoning = as_dict(req.get("reasoning"))
        return {
            "id": self.response_id, "object": "response", "created_at": self.created_at, "status": status,
            "background": False, "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": req.get("instructions"), "max_output_tokens": req.get("max_output_tokens"),
            "max_tool_calls": req.get("max_tool_calls"), "model": req.get("model"), "output": output,
            "parallel_tool_calls": req.get("parallel_tool_calls", True), "previous_response_id": None,
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": "default", "store": False, "temperature": req.get("temperature", 1.0),
            "text": req.get("text") if isinstance(req.get("text"), dict) else {"format": {"type": "text"}},
            "tool_choice": req.get("tool_choice", "auto"), "tools": req.get("tools") or [],
            "top_p": req.get("top_p", 1.0), "truncation": req.get("truncation", "disabled"), "usage": usage,
            "user": req.get("user"), "metadata": req.get("metadata") or {},
        }


def chat_to_response(completion: dict[str, Any], context: ResponsesContext) -> dict[str, Any]:
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("The upstream answered without a choice.")
    choice = choices[0]
    message = as_dict(choice.get("message"))
    output: list[dict[str, Any]] = []
    reasoning = next((message[n] for n in ("reasoning_content", "reasoning") if isinstance(message.get(n), str) and message[n]), "")
    if reasoning:
        output.append(reasoning_item(context.item_id("rs", len(output)), reasoning))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        output.append(message_item(context.item_id("msg", len(output)), message["refusal"], refusal=True))
    elif isinstance(message.get("content"), str) and message["content"]:
        output.append(message_item(context.item_id("msg", len(output)), message["content"]))
    for call in _calls(message):
        function = as_dict(call.get("function"))
        output.append(call_item(context, len(output), str(call.get("id") or ""), str(function.get("name") or ""),
                                str(function.get("arguments") or "")))
    finish = choice.get("finish_reason")
    incomplete = _INCOMPLETE.get(finish) if isinstance(finish, str) else None
    return context.envelope("incomplete" if incomplete else "completed", output, usage_from_chat(completion.get("usage")),
                            incomplete)


def reasoning_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": text}],
            "status": status}


def message_item(item_id: str, text: str, *, refusal: bool = False, status: str = "completed") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [text_part(text, refusal=refusal)]}


def text_part(text: str, *, refusal: bool = False) -> dict[str, Any]:
    if refusal:
        return {"type": "refusal", "refusal": text}
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(context: ResponsesContext, index: int, call_id: str, name: str, arguments: str,
              status: str = "completed") -> dict[str, Any]:
    """A ``function_call`` item, or a ``custom_tool_call`` when the chat function stands for a custom tool."""
    origin = context.tools.get(name, ToolOrigin(name))
    if origin.kind == "custom":
        item: dict[str, Any] = {"id": context.item_id("ctc", index), "type": "custom_tool_call", "status": status,
                                "call_id": call_id, "name": origin.name, "input": custom_input(arguments)}
    else:
        item = {"id": context.item_id("fc", index), "type": "function_call", "status": status, "call_id": call_id,
                "name": origin.name, "arguments": arguments}
    if origin.namespace is not None:
        item["namespace"] = origin.namespace
    return item


def custom_input(arguments: str) -> str:
    """The free-form input of a custom tool, from the one-string function it was offered as."""
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    return parsed["input"] if isinstance(parsed, dict) and isinstance(parsed.get("input"), str) else arguments


def usage_from_chat(usage: Any) -> dict[str, Any] | None:
    """The Responses ``usage`` object from an OpenAI chat ``usage`` (``None`` when there was none)."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    cached = min(prompt, _int(as_dict(usage.get("prompt_tokens_details")).get("cached_tokens")))
    reasoning = _int(as_dict(usage.get("completion_tokens_details")).get("reasoning_tokens"))
    return _usage(prompt, completion, cached, reasoning)


def usage_from_gateway(usage: Usage) -> dict[str, Any]:
    """The Responses ``usage`` object from the gateway's ``Usage`` (a cached answer, an accounted stream)."""
    return _usage(usage.prompt_tokens, usage.completion_tokens, 0, 0)


def _usage(prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = message.get("tool_calls")
    return [call for call in calls if isinstance(call, dict)] if isinstance(calls, list) else []
