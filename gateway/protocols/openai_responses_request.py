"""An OpenAI Responses request → an OpenAI chat completions request (for an upstream that speaks chat).

Mapped: ``instructions`` and system/developer messages → one leading system message (open models'
chat templates take system text first only); ``input`` as a string or items — messages with
``input_text``/``input_image``/``input_file`` parts, ``function_call``/``custom_tool_call`` → assistant
``tool_calls``, their outputs → ``tool`` messages; tools (see ``openai_responses_tools``),
``tool_choice`` (``allowed_tools`` narrows the offered tools), ``parallel_tool_calls``;
``text.format`` → ``response_format``; ``reasoning.effort`` → ``reasoning_effort`` where the target
reasons; ``max_output_tokens`` → ``max_tokens`` (clamped); ``temperature``/``top_p``;
``safety_identifier``/``user`` → ``user``; streams ask for usage.

Dropped and named (advisory): ``reasoning`` for a target that does not reason, ``reasoning.summary``,
reasoning items of earlier turns, ``include``, ``store`` (the gateway stores nothing: every response is
``store: false``), ``prompt_cache_key``, ``client_metadata``, ``metadata`` (echoed back, not sent),
``text.verbosity``, ``truncation``, ``service_tier``, ``max_tool_calls``, hosted tools and their calls
in the history, and fields this module does not know.
Refused (400), since they need state the gateway does not keep or would change the answer:
``previous_response_id``, ``conversation``, ``background``, ``prompt`` (stored prompts),
``item_reference`` inputs, files by id or URL, a ``tool_choice`` naming a hosted tool.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.errors import InvalidRequest
from gateway.protocols.openai_responses_tools import NAMESPACE_SEPARATOR, chat_tools
from gateway.protocols.translation import ANY_CHAT_TARGET, ChatTarget, Translation

_MAPPED = frozenset((
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning",
    "max_output_tokens", "temperature", "top_p", "stream", "user", "safety_identifier", "stream_options",
    "top_logprobs",
))
_SYSTEM_ROLES = ("system", "developer")
_CHAT_CHOICES = ("auto", "none", "required")


def responses_to_chat(body: dict[str, Any], target: ChatTarget = ANY_CHAT_TARGET) -> Translation:
    """Translate a validated Responses request (see ``openai_responses_validation``)."""
    out = Translation({"model": body["model"]})
    system = [body["instructions"]] if body.get("instructions") else []
    data = body["input"]
    items = [{"role": "user", "content": data}] if isinstance(data, str) else data
    messages = _messages(items, system, out)
    if system:
        messages.insert(0, {"role": "system", "content": "\n\n".join(system)})
    out.body["messages"] = messages
    _tools(body, out)
    _format_and_reasoning(body, target, out)
    out.clamp_max_tokens("max_output_tokens", body.get("max_output_tokens"), target)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out.body[name] = body[name]
    if body.get("parallel_tool_calls") is not None and "tools" in out.body:  # chat refuses it without tools
        out.body["parallel_tool_calls"] = body["parallel_tool_calls"]
    if isinstance(body.get("top_logprobs"), int):
        out.body["logprobs"], out.body["top_logprobs"] = True, body["top_logprobs"]
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out.body["user"] = user
    if body.get("stream"):
        out.body["stream"] = True
        out.body["stream_options"] = {"include_usage": True}
    for name, value in body.items():
        if name not in _MAPPED and not (name == "store" and value is False):
            out.drop(name)
    return out


def _messages(items: list[dict[str, Any]], system: list[str], out: Translation) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in _SYSTEM_ROLES:
                system.append(_text(item.get("content"), f"input[{i}].content"))
            elif role == "assistant":  # text only, as one string: what every chat template takes
                messages.append({"role": role, "content": _text(item.get("content"), f"input[{i}].content")})
            elif role == "user":
                messages.append({"role": role, "content": _content(item.get("content"), f"input[{i}].content")})
            else:
                raise InvalidRequest(f"Invalid value: '{role}'. Supported values are: 'assistant', 'system', "
                                     "'developer', and 'user'.", param=f"input[{i}].role", code="invalid_value")
        elif kind in ("function_call", "custom_tool_call"):
            _call(item, messages, i)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            if not isinstance(item.get("call_id"), str):
                raise _missing(f"input[{i}].call_id")
            output = item.get("output")
            text = output if isinstance(output, str) else _text(output, f"input[{i}].output")
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        elif kind == "item_reference":
            raise InvalidRequest("Item references need stored responses, which this gateway does not keep; send the "
                                 "item itself.", param=f"input[{i}]", code="unsupported_parameter")
        else:  # reasoning items, hosted tool calls and their results from earlier turns
            out.drop(f"input.{kind}")
    return messages


def _call(item: dict[str, Any], messages: list[dict[str, Any]], i: int) -> None:
    for name in ("call_id", "name"):
        if not isinstance(item.get(name), str):
            raise _missing(f"input[{i}].{name}")
    name = item["name"]
    if isinstance(item.get("namespace"), str) and item["namespace"]:
        name = f"{item['namespace']}{NAMESPACE_SEPARATOR}{name}"
    if item["type"] == "custom_tool_call":
        arguments = orjson.dumps({"input": str(item.get("input", ""))}).decode()
    else:
        arguments = item["arguments"] if isinstance(item.get("arguments"), str) else "{}"
    call = {"id": item["call_id"], "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":  # one assistant turn: its text and all its calls
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _content(content: Any, path: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"Invalid type for '{path}': expected a string or an array.", param=path, code="invalid_type")
    parts = [_part(part, f"{path}[{j}]") for j, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts) if len(parts) == 1 else parts
    return parts


def _part(part: Any, path: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and isinstance(part.get("file_data"), str):
        return {"type": "file", "file": {"file_data": part["file_data"], "filename": str(part.get("filename") or "file")}}
    raise InvalidRequest(f"'{path}': a `{kind}` part cannot be translated for the model this request is routed to "
                         "(files and images must be sent inline, not by id).", param=path, code="invalid_value")


def _text(content: Any, path: str) -> str:
    """Text of a content that may only hold text (system turns, tool output)."""
    parts = _content(content, path)
    if isinstance(parts, str):
        return parts
    return "".join(part["text"] for part in parts if part["type"] == "text")


def _tools(body: dict[str, Any], out: Translation) -> None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = [t.get("name") for t in choice.get("tools") or () if isinstance(t, dict)]
        tools = [t for t in tools if t.get("name") in allowed or t.get("type") not in ("function", "custom")]
        choice = choice.get("mode", "auto")
    functions = chat_tools(tools, out.dropped)
    if choice is None or choice == "auto":
        pass
    elif choice in _CHAT_CHOICES:
        out.body["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") in ("function", "custom") and isinstance(choice.get("name"), str):
        out.body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        kind = choice.get("type") if isinstance(choice, dict) else choice
        raise InvalidRequest(f"tool_choice `{kind}` names a tool the model this request is routed to cannot run.",
                             param="tool_choice", code="invalid_value")
    if functions:
        out.body["tools"] = functions
    elif out.body.pop("tool_choice", None) not in (None, "none"):
        raise InvalidRequest("tool_choice requires a tool, but no tool the routed model can call was given.",
                             param="tool_choice", code="invalid_value")


def _format_and_reasoning(body: dict[str, Any], target: ChatTarget, out: Translation) -> None:
    text = body.get("text") or {}
    fmt = text.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {"name": fmt.get("name") or "output", "schema": fmt.get("schema") or {}}
        for name in ("strict", "description"):
            if fmt.get(name) is not None:
                schema[name] = fmt[name]
        out.body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out.body["response_format"] = {"type": "json_object"}
    for name in text:
        if name != "format":
            out.drop(f"text.{name}")
    reasoning = body.get("reasoning") or {}
    effort = reasoning.get("effort")
    if isinstance(effort, str) and effort != "none":
        if target.reasoning:
            out.body["reasoning_effort"] = {"xhigh": "high", "max": "high"}.get(effort, effort)
        else:
            out.drop("reasoning")
    for name in reasoning:
        if name != "effort" and reasoning[name] is not None:
            out.drop(f"reasoning.{name}")


def _missing(path: str) -> InvalidRequest:
    return InvalidRequest(f"Missing required parameter: '{path}'.", param=path, code="missing_required_parameter")
