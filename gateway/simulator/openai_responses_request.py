"""Reading a ``POST /v1/responses`` body into a neutral ``Prompt``, checked the way OpenAI checks it.

The checks are the ones a client, or a gateway translating for one, can get wrong, answered with
OpenAI's wording, ``param`` and ``code``: chat-shaped messages (role ``tool``, part type ``text``) or
tools (``function`` nested), a ``function_call_output`` with no matching ``function_call`` or a call
left without its output, ``max_output_tokens`` below 16. The simulator stores nothing, so what
needs stored state (``previous_response_id``, ``conversation``, ``background``) is refused with a
400, and an ``item_reference`` with OpenAI's 404, rather than silently answered without its context.
Reasoning items sent back are checked in ``openai_responses_reasoning``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.simulator.generation import Prompt, Tool
from gateway.simulator.openai_param_errors import invalid_type, invalid_value, missing
from gateway.simulator.openai_responses_reasoning import Reasoning, check_reasoning_input, reasoning_plan
from gateway.simulator.wire import BadRequest

MIN_OUTPUT_TOKENS = 16
_ROLES = ("assistant", "system", "developer", "user")
_PARTS_BY_ROLE = {
    "assistant": ("output_text", "refusal"),
    "user": ("input_text", "input_image", "input_file", "input_audio"),
    "system": ("input_text", "input_image", "input_file", "input_audio"),
    "developer": ("input_text", "input_image", "input_file", "input_audio"),
}
_TOOL_CHOICE_MODES = ("none", "auto", "required")


@dataclass(slots=True)
class ResponsesRequest:
    prompt: Prompt
    echo: dict[str, Any] = field(default_factory=dict)
    """The request settings a Response object reports back (``tools``, ``text``, ``store``...)."""
    reasoning: Reasoning | None = None
    stream: bool = False
    obfuscate: bool = True
    """Pad stream deltas with an ``obfuscation`` field, as OpenAI does unless told not to."""


def parse_request(body: dict[str, Any], model: str) -> ResponsesRequest:
    _refuse_stored_state(body)
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_type("instructions", "a string", instructions)
    items = _input_items(body.get("input"))
    _check_call_pairs(items)
    tools = _tools(body.get("tools"))
    parallel = body.get("parallel_tool_calls") is not False
    reasoning = reasoning_plan(body)
    max_tokens = _max_output_tokens(body.get("max_output_tokens"))
    if max_tokens is not None and reasoning is not None:
        max_tokens = max(0, max_tokens - reasoning.tokens)  # reasoning spends the same budget first
    prompt = Prompt(
        model=model,
        text="\n".join(t for t in [instructions or "", *(_item_text(i) for i in items)] if t),
        call_tools=_tools_to_call(tools, body.get("tool_choice"), items, parallel=parallel),
        max_tokens=max_tokens,
    )
    text = _text_config(prompt, body.get("text"))
    stream_options = body.get("stream_options")
    return ResponsesRequest(
        prompt,
        echo=_echo(body, tools, text, parallel, reasoning),
        reasoning=reasoning,
        stream=body.get("stream") is True,
        obfuscate=not (
            isinstance(stream_options, dict) and stream_options.get("include_obfuscation") is False
        ),
    )


def _refuse_stored_state(body: dict[str, Any]) -> None:
    previous = body.get("previous_response_id")
    if previous is not None:
        raise BadRequest(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    conversation = body.get("conversation")
    if conversation is not None:
        name = conversation.get("id") if isinstance(conversation, dict) else conversation
        raise BadRequest(f"Conversation with id '{name}' not found.", param="conversation")
    if body.get("background") is True:
        raise BadRequest(
            "Background mode needs stored responses, and this simulated upstream stores none.",
            param="background",
        )


def _input_items(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        raise missing("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise invalid_type("input", "a string or an array of input items", raw)
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise invalid_type(f"input[{index}]", "an object", item)
        _check_item(item, f"input[{index}]")
    return raw


def _check_item(item: dict[str, Any], where: str) -> None:
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        _check_message(item, where)
    elif kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            if not isinstance(item.get(key), str):
                raise missing(f"{where}.{key}")
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise missing(f"{where}.call_id")
        if not isinstance(item.get("output"), str | list):
            raise missing(f"{where}.output")
    elif kind == "reasoning":
        check_reasoning_input(item)
    elif kind == "item_reference":
        raise BadRequest(f"Item with id '{item.get('id')}' not found.", param="input", status=404)
    elif not isinstance(kind, str):
        raise missing(f"{where}.type")


def _check_message(item: dict[str, Any], where: str) -> None:
    role = item.get("role")
    if role not in _ROLES:
        raise invalid_value(f"{where}.role", role, _ROLES)
    content = item.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid_type(f"{where}.content", "a string or an array of content parts", content)
    allowed = _PARTS_BY_ROLE[role]
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            raise invalid_value(f"{where}.content[{index}].type", kind, allowed)


def _check_call_pairs(items: list[dict[str, Any]]) -> None:
    """Every ``function_call_output`` answers a call in the input, and every call has its output."""
    calls = [i["call_id"] for i in items if i.get("type") == "function_call"]
    outputs = {i["call_id"] for i in items if i.get("type") == "function_call_output"}
    orphans = sorted(outputs - set(calls))
    if orphans:
        raise BadRequest(
            f"No tool call found for function call output with call_id {orphans[0]}.", param="input"
        )
    unanswered = [call_id for call_id in calls if call_id not in outputs]
    if unanswered:
        raise BadRequest(f"No tool output found for function call {unanswered[0]}.", param="input")


def _item_text(item: dict[str, Any]) -> str:
    kind = item.get("type", "message")
    if kind == "message":
        return _content_text(item.get("content"))
    if kind == "function_call":
        return str(item["arguments"])
    if kind == "function_call_output":
        return _content_text(item["output"])
    return ""  # reasoning, hosted-tool calls and their outputs: no text the answer depends on


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content if isinstance(content, list) else ():
        text = part.get("text", part.get("refusal")) if isinstance(part, dict) else None
        if isinstance(text, str):
            texts.append(text)
    return "\n".join(texts)


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid_type("tools", "an array", raw)
    for index, tool in enumerate(raw):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise missing(f"tools[{index}].type")
        if tool["type"] != "function":
            continue  # hosted and grouped tools are echoed, never run: the simulator cannot run them
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise missing(f"tools[{index}].name")
        if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
            raise invalid_type(f"tools[{index}].parameters", "an object", tool["parameters"])
    return raw


def _tools_to_call(
    tools: list[dict[str, Any]], choice: Any, items: list[dict[str, Any]], *, parallel: bool
) -> tuple[Tool, ...]:
    """The functions the answer calls, decided as the chat simulator decides (see ``openai_chat``)."""
    functions = [Tool(t["name"], t.get("parameters") or {}) for t in tools if t["type"] == "function"]
    mode, allowed = "auto", functions
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_MODES:
            raise invalid_value("tool_choice", choice, _TOOL_CHOICE_MODES)
        mode = choice
    elif isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            named = [f for f in functions if f.name == choice.get("name")]
            if not named:
                raise BadRequest(
                    "Tool choice 'function' not found in 'tools' parameter.", param="tool_choice"
                )
            return (named[0],)
        if kind != "allowed_tools":
            return ()  # a hosted tool is forced: the simulator cannot run it, so it answers in text
        names = {t.get("name") for t in choice.get("tools") or () if isinstance(t, dict)}
        mode, allowed = choice.get("mode", "auto"), [f for f in functions if f.name in names]
        if mode not in ("auto", "required"):
            raise invalid_value("tool_choice.mode", mode, ("auto", "required"))
    elif choice is not None:
        raise invalid_type("tool_choice", "a string or an object", choice)
    if mode == "none" or not allowed:
        return ()
    if mode == "auto" and items and items[-1].get("type") == "function_call_output":
        return ()  # the tool already answered: reply in text, so agent loops terminate
    return tuple(allowed) if parallel else tuple(allowed[:1])


def _max_output_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_type("max_output_tokens", "an integer", value)
    if value < MIN_OUTPUT_TOKENS:
        raise BadRequest(
            "Invalid 'max_output_tokens': integer below minimum value. "
            f"Expected a value >= {MIN_OUTPUT_TOKENS}, but got {value} instead.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )
    return value


def _text_config(prompt: Prompt, text: Any) -> dict[str, Any]:
    """Applies ``text.format`` to the prompt; returns the ``text`` object the response reports."""
    if text is None:
        text = {}
    if not isinstance(text, dict):
        raise invalid_type("text", "an object", text)
    fmt = text.get("format") or {"type": "text"}
    if not isinstance(fmt, dict):
        raise invalid_type("text.format", "an object", fmt)
    kind = fmt.get("type")
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str):
            raise missing("text.format.name")
        if not isinstance(fmt.get("schema"), dict):
            raise missing("text.format.schema")
        prompt.json_schema = fmt["schema"]
    elif kind == "json_object":
        prompt.json_mode = True
    elif kind != "text":
        raise invalid_value("text.format.type", kind, ("text", "json_schema", "json_object"))
    return {"format": fmt, "verbosity": text.get("verbosity") or "medium"}


def _echo(
    body: dict[str, Any],
    tools: list[dict[str, Any]],
    text: dict[str, Any],
    parallel: bool,
    reasoning: Reasoning | None,
) -> dict[str, Any]:
    asked = body.get("reasoning") or {}
    effort = reasoning.effort if reasoning is not None else asked.get("effort")
    tier = body.get("service_tier")

    def given(key: str, default: Any) -> Any:
        value = body.get(key)
        return default if value is None else value

    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "parallel_tool_calls": parallel,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": effort, "summary": asked.get("summary")},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default" if tier in (None, "auto") else tier,
        "store": body.get("store") is not False,
        "temperature": given("temperature", 1.0),
        "text": text,
        "tool_choice": given("tool_choice", "auto"),
        "tools": [_echoed_tool(t) for t in tools],
        "top_logprobs": given("top_logprobs", 0),
        "top_p": given("top_p", 1.0),
        "truncation": given("truncation", "disabled"),
        "user": body.get("user"),
        "metadata": given("metadata", {}),
    }


def _echoed_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool["type"] != "function":
        return tool
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict") is not False,  # Responses function tools are strict unless told not
    }
