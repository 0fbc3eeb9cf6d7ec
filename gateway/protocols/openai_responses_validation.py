"""Validate an OpenAI Responses request before it is routed: what OpenAI itself rejects, in its wording.

Also refused here, with a clear 400, is what needs state the gateway does not keep
(``previous_response_id``, ``conversation``, ``background``, stored ``prompt``s). The shapes the
translation relies on (items, content parts, tools, ``tool_choice``) are checked here too, so the
translation never meets a malformed value; what it cannot express is refused there.
"""

from __future__ import annotations

from typing import Any

from gateway.core.errors import InvalidRequest

_STATEFUL = ("previous_response_id", "conversation", "background", "prompt")
_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("instructions", str), ("tools", list), ("parallel_tool_calls", bool), ("stream", bool), ("text", dict),
    ("reasoning", dict), ("user", str), ("safety_identifier", str), ("metadata", dict), ("top_logprobs", int),
)


def validate_responses(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise _missing("model")
    if not isinstance(model, str) or not model:
        raise _invalid_type("model", "a string")
    for name in _STATEFUL:
        if body.get(name) not in (None, False):
            raise InvalidRequest(f"'{name}' is not supported by this gateway: it keeps no responses or conversations. "
                                 "Send the whole conversation in 'input' (with 'store': false).", param=name,
                                 code="unsupported_parameter")
    for name, kind in _TYPES:
        if body.get(name) is not None and (not isinstance(body[name], kind) or isinstance(body[name], bool) is not (kind is bool)):
            raise _invalid_type(name, "a value of another type")
    _input(body.get("input"))
    for i, tool in enumerate(body.get("tools") or ()):
        _tool(tool, f"tools[{i}]")
    _tool_choice(body.get("tool_choice"))
    _text_and_reasoning(body)
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 16):
        raise InvalidRequest(f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got "
                             f"{limit!r} instead.", param="max_output_tokens", code="integer_below_min_value")
    for name, high in (("temperature", 2), ("top_p", 1)):
        value = body.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= high):
            raise InvalidRequest(f"Invalid '{name}': expected a number between 0 and {high}.", param=name,
                                 code="invalid_value")


def _input(data: Any) -> None:
    if data is None:
        raise _missing("input")
    if isinstance(data, str):
        return
    if not isinstance(data, list):
        raise _invalid_type("input", "a string or an array of input items")
    for i, item in enumerate(data):
        path = f"input[{i}]"
        if not isinstance(item, dict):
            raise _invalid_type(path, "an object")
        if not isinstance(item.get("type", "message"), str):
            raise _invalid_type(f"{path}.type", "a string")
        if item.get("type", "message") == "message":
            _content(item.get("content"), f"{path}.content")
        for name in ("call_id", "name", "arguments", "namespace", "id"):
            if item.get(name) is not None and not isinstance(item[name], str):
                raise _invalid_type(f"{path}.{name}", "a string")
        if item.get("type") in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            if not isinstance(output, str):
                _content(output, f"{path}.output")


def _content(content: Any, path: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid_type(path, "a string or an array of content parts")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _missing(f"{path}[{j}].type")
        for name in ("text", "refusal", "image_url", "file_data", "filename", "detail"):
            if part.get(name) is not None and not isinstance(part[name], str):
                raise _invalid_type(f"{path}[{j}].{name}", "a string")


def _tool(tool: Any, path: str) -> None:
    if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
        raise _missing(f"{path}.type")
    kind = tool["type"]
    if kind not in ("function", "custom", "namespace"):
        return  # a hosted tool: the translation removes it, a native upstream checks it
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise _missing(f"{path}.name")
    if tool.get("description") is not None and not isinstance(tool["description"], str):
        raise _invalid_type(f"{path}.description", "a string")
    if kind == "function":
        if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
            raise _invalid_type(f"{path}.parameters", "an object")
        if tool.get("strict") is not None and not isinstance(tool["strict"], bool):
            raise _invalid_type(f"{path}.strict", "a boolean")
    elif kind == "custom":
        fmt = tool.get("format")
        if fmt is not None and (not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str)):
            raise _missing(f"{path}.format.type")
    else:
        inner = tool.get("tools")
        if not isinstance(inner, list):
            raise _invalid_type(f"{path}.tools", "an array")
        for j, member in enumerate(inner):
            if not isinstance(member, dict) or member.get("type") not in ("function", "custom"):
                raise InvalidRequest(f"Invalid value for '{path}.tools[{j}].type': a namespace groups function and "
                                     "custom tools.", param=f"{path}.tools[{j}].type", code="invalid_value")
            _tool(member, f"{path}.tools[{j}]")


def _tool_choice(choice: Any) -> None:
    if choice is None or choice in ("auto", "none", "required"):
        return
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise InvalidRequest("Invalid value for 'tool_choice': expected 'auto', 'none', 'required' or an object.",
                             param="tool_choice", code="invalid_value")
    if choice["type"] in ("function", "custom") and not isinstance(choice.get("name"), str):
        raise _missing("tool_choice.name")
    if choice["type"] == "allowed_tools":
        if choice.get("mode", "auto") not in ("auto", "required"):
            raise InvalidRequest("Invalid value for 'tool_choice.mode': expected 'auto' or 'required'.",
                                 param="tool_choice.mode", code="invalid_value")
        if not isinstance(choice.get("tools"), list):
            raise _missing("tool_choice.tools")


def _text_and_reasoning(body: dict[str, Any]) -> None:
    fmt = (body.get("text") or {}).get("format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise InvalidRequest("Invalid value for 'text.format.type': expected 'text', 'json_object' or 'json_schema'.",
                                 param="text.format.type", code="invalid_value")
        if fmt["type"] == "json_schema":
            if not isinstance(fmt.get("name"), str):
                raise _missing("text.format.name")
            if not isinstance(fmt.get("schema"), dict):
                raise _missing("text.format.schema")
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None and not isinstance(effort, str):
        raise _invalid_type("reasoning.effort", "a string")


def _missing(path: str) -> InvalidRequest:
    return InvalidRequest(f"Missing required parameter: '{path}'.", param=path, code="missing_required_parameter")


def _invalid_type(path: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid type for '{path}': expected {expected}.", param=path, code="invalid_type")
