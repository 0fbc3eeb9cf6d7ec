"""Validate OpenAI request bodies before anything is routed or sent upstream.

Only what OpenAI itself would reject is rejected, with its own style of message and the offending
``param``; every other field, known or not, is kept and forwarded unchanged. Hand-written checks
instead of pydantic models: a request body is validated on every call, and this is several times
cheaper than building a model, while keeping the body as the plain dict we forward.
"""

from __future__ import annotations

from typing import Any

from gateway.core.errors import InvalidRequest
from gateway.core.types import Endpoint
from gateway.protocols.json_body import kind_of as _kind
from gateway.protocols.json_body import parse_json_object

__all__ = ["parse_json_object", "validate"]

MAX_TOKENS = 2**31 - 1
"""Largest token count accepted anywhere (no model has a window near it; bigger values are typos or probes)."""
_INT64 = (-(2**63), 2**63 - 1)

_ROLES = frozenset(("system", "developer", "user", "assistant", "tool", "function"))
_TOOL_CHOICES = frozenset(("none", "auto", "required"))
_FORMATS = frozenset(("text", "json_object", "json_schema"))


def validate(endpoint: Endpoint, body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("you must provide a model parameter", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(f"Invalid type for 'model': expected a non-empty string, but got {_kind(model)}.", param="model",
                             code="invalid_type")
    if endpoint is Endpoint.CHAT:
        _chat(body)
    elif endpoint is Endpoint.COMPLETIONS:
        _completions(body)
    else:
        _embeddings(body)


def _chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list):
        raise InvalidRequest(f"Invalid type for 'messages': expected an array, but got {_kind(messages)}.", param="messages",
                             code="invalid_type")
    if not messages:
        raise InvalidRequest("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                             param="messages", code="empty_array")
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"Invalid type for '{param}': expected an object, but got {_kind(message)}.", param=param,
                                 code="invalid_type")
        role = message.get("role")
        if role is None:
            raise InvalidRequest(f"Missing required parameter: '{param}.role'.", param=f"{param}.role",
                                 code="missing_required_parameter")
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequest(f"Invalid value: '{role}'. Supported values are: {', '.join(sorted(_ROLES))}.",
                                 param=f"{param}.role", code="invalid_value")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequest(f"Invalid type for '{param}.content': expected one of a string or array of objects, but got {_kind(content)}.",
                                 param=f"{param}.content", code="invalid_type")
        if content is None and role in ("user", "system", "developer"):
            raise InvalidRequest(f"Missing required parameter: '{param}.content'.", param=f"{param}.content",
                                 code="missing_required_parameter")
        if isinstance(content, list):
            _content_parts(content, f"{param}.content")
        name = message.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidRequest(f"Invalid type for '{param}.name': expected a string, but got {_kind(name)}.",
                                 param=f"{param}.name", code="invalid_type")
    _common_sampling(body)
    _positive_int(body, "max_completion_tokens")
    _int_range(body, "top_logprobs", 0, 20)
    _type(body, "logprobs", bool)
    _type(body, "parallel_tool_calls", bool)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest(f"Invalid type for 'tools': expected an array, but got {_kind(tools)}.", param="tools", code="invalid_type")
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise InvalidRequest(f"Missing required parameter: 'tools[{i}].function.name'.", param=f"tools[{i}].function.name",
                                     code="missing_required_parameter")
    choice = body.get("tool_choice")
    if choice is not None and not ((isinstance(choice, str) and choice in _TOOL_CHOICES) or isinstance(choice, dict)):
        raise InvalidRequest(f"Invalid value for 'tool_choice': {choice!r}. Expected none, auto, required or an object.",
                             param="tool_choice", code="invalid_value")
    fmt = body.get("response_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str) or fmt["type"] not in _FORMATS:
            raise InvalidRequest("Invalid 'response_format': 'type' must be one of text, json_object, json_schema.",
                                 param="response_format.type", code="invalid_value")
        if fmt["type"] == "json_schema":
            schema = fmt.get("json_schema")
            if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
                raise InvalidRequest("Missing required parameter: 'response_format.json_schema.name'.",
                                     param="response_format.json_schema.name", code="missing_required_parameter")


def _completions(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if not isinstance(prompt, str | list):
        raise InvalidRequest(f"Invalid type for 'prompt': expected a string or array, but got {_kind(prompt)}.",
                             param="prompt", code="invalid_type")
    if isinstance(prompt, list) and not _prompt_list(prompt):
        raise InvalidRequest("Invalid 'prompt': expected a string, an array of strings, an array of token ids or an "
                             "array of arrays of token ids.", param="prompt", code="invalid_type")
    _common_sampling(body)
    _int_range(body, "logprobs", 0, 5)
    _positive_int(body, "best_of")


def _embeddings(body: dict[str, Any]) -> None:
    data = body.get("input")
    if data is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if isinstance(data, str):
        if not data:
            raise InvalidRequest("'$.input' is invalid: input cannot be an empty string.", param="input", code="invalid_value")
    elif isinstance(data, list):
        if not data:
            raise InvalidRequest("'$.input' is invalid: input cannot be an empty array.", param="input", code="empty_array")
        if not (all(isinstance(x, str) for x in data) or _token_ids(data) or all(_token_ids(x) for x in data)):
            raise InvalidRequest("'$.input' is invalid: expected strings, an array of token ids or arrays of token ids.",
                                 param="input", code="invalid_type")
    else:
        raise InvalidRequest(f"Invalid type for 'input': expected a string or array, but got {_kind(data)}.", param="input",
                             code="invalid_type")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise InvalidRequest(f"Invalid value: '{fmt}'. Supported values are: 'float' and 'base64'.", param="encoding_format",
                             code="invalid_value")
    _positive_int(body, "dimensions")


def _content_parts(parts: list[Any], param: str) -> None:
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidRequest(f"Invalid '{param}[{i}]': expected an object with a string 'type'.",
                                 param=f"{param}[{i}]", code="invalid_type")


def _token_ids(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in value)


def _prompt_list(prompt: list[Any]) -> bool:
    return (all(isinstance(p, str) for p in prompt) or _token_ids(prompt)
            or all(_token_ids(p) for p in prompt))


def _common_sampling(body: dict[str, Any]) -> None:
    _positive_int(body, "max_tokens")
    _int_range(body, "n", 1, 128)
    _number_range(body, "temperature", 0, 2)
    _number_range(body, "top_p", 0, 1)
    _number_range(body, "presence_penalty", -2, 2)
    _number_range(body, "frequency_penalty", -2, 2)
    _type(body, "stream", bool)
    _int_range(body, "seed", *_INT64)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)
    ):
        raise InvalidRequest("Invalid 'stop': expected a string or an array of at most 4 strings.", param="stop",
                             code="invalid_value")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise InvalidRequest(f"Invalid type for 'stream_options': expected an object, but got {_kind(options)}.",
                                 param="stream_options", code="invalid_type")
        if body.get("stream") is not True:
            raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                 param="stream_options", code="invalid_value")


def _type(body: dict[str, Any], name: str, kind: type) -> None:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        expected = {bool: "a boolean", int: "an integer"}.get(kind, kind.__name__)
        raise InvalidRequest(f"Invalid type for '{name}': expected {expected}, but got {_kind(value)}.", param=name,
                             code="invalid_type")


def _positive_int(body: dict[str, Any], name: str) -> None:
    _int_range(body, name, 1, MAX_TOKENS)


def _int_range(body: dict[str, Any], name: str, low: int, high: int | None) -> None:
    value = body.get(name)
    if value is None:
        return
    _type(body, name, int)
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise InvalidRequest(f"Invalid '{name}': integer {value} must be {bound}.", param=name, code="invalid_value")


def _number_range(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"Invalid type for '{name}': expected a number, but got {_kind(value)}.", param=name,
                             code="invalid_type")
    if not low <= value <= high:
        raise InvalidRequest(f"Invalid '{name}': {value} must be between {low:g} and {high:g}.", param=name,
                             code="invalid_value")
