"""Validate an Anthropic Messages request the way Anthropic does, before it is routed.

Messages follow Anthropic's (pydantic-style) wording, ``"<dotted.path>: <what is wrong>"``, and are
raised as ``InvalidRequest`` (rendered as ``invalid_request_error``, 400, by ``anthropic_errors``).
Only the fields whose shape the translation relies on are checked; fields a newer client sends that
are not known here are left to the translation (dropped and named) or to a native upstream.
"""

from __future__ import annotations

from typing import Any

from gateway.core.errors import InvalidRequest

ROLES = ("user", "assistant")
_TOOL_CHOICES = ("auto", "any", "tool", "none")
_THINKING = ("enabled", "disabled", "adaptive")


def validate_messages(body: dict[str, Any], *, counting: bool = False) -> None:
    """``POST /v1/messages`` (``counting``: ``/v1/messages/count_tokens``, where ``max_tokens`` is not taken)."""
    _required_str(body, "model")
    if not counting:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise _error("max_tokens", "Field required")
        _int_at_least(max_tokens, "max_tokens", 1)
    messages = body.get("messages")
    if messages is None:
        raise _error("messages", "Field required")
    if not isinstance(messages, list):
        raise _error("messages", "Input should be a valid list")
    if not messages:
        raise _error("messages", "at least one message is required")
    for i, message in enumerate(messages):
        _message(message, f"messages.{i}")
    _system(body.get("system"))
    _number(body, "temperature", 0.0, 1.0)
    _number(body, "top_p", 0.0, 1.0)
    if body.get("top_k") is not None:
        _int_at_least(body["top_k"], "top_k", 0)
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise _error("stop_sequences", "Input should be a valid list of strings")
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise _error("stream", "Input should be a valid boolean")
    _metadata(body.get("metadata"))
    _tools(body.get("tools"))
    _tool_choice(body.get("tool_choice"))
    _thinking(body, counting)


def _message(message: Any, path: str) -> None:
    if not isinstance(message, dict):
        raise _error(path, "Input should be a valid dictionary")
    role = message.get("role")
    if role is None:
        raise _error(f"{path}.role", "Field required")
    # A system-role message inside ``messages`` is what some clients send; it is taken as system text.
    if role not in (*ROLES, "system"):
        raise _error(f"{path}.role", "Input should be 'user' or 'assistant'")
    content = message.get("content")
    if content is None:
        raise _error(f"{path}.content", "Field required")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _error(f"{path}.content", "Input should be a valid string or a valid list")
    for j, block in enumerate(content):
        _block(block, f"{path}.content.{j}")


def _block(block: Any, path: str) -> None:
    if not isinstance(block, dict):
        raise _error(path, "Input should be a valid dictionary")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise _error(f"{path}.type", "Field required")
    if kind == "text":
        _required_str(block, "text", path)
    elif kind in ("image", "document"):
        source = block.get("source")
        if not isinstance(source, dict) or not isinstance(source.get("type"), str):
            raise _error(f"{path}.source", "Field required")
        for name in ("data", "media_type", "url"):
            if name in source and not isinstance(source[name], str):
                raise _error(f"{path}.source.{name}", "Input should be a valid string")
        if source["type"] == "content":
            _nested(source.get("content"), f"{path}.source.content")
        if "title" in block and block["title"] is not None and not isinstance(block["title"], str):
            raise _error(f"{path}.title", "Input should be a valid string")
    elif kind == "tool_use" or kind == "server_tool_use":
        _required_str(block, "id", path)
        _required_str(block, "name", path)
        if not isinstance(block.get("input"), dict):
            raise _error(f"{path}.input", "Input should be a valid dictionary")
    elif kind == "tool_result":
        _required_str(block, "tool_use_id", path)
        _nested(block.get("content"), f"{path}.content", required=False)
    elif kind == "thinking":
        _required_str(block, "thinking", path)


def _nested(content: Any, path: str, *, required: bool = True) -> None:
    """Blocks inside a block (a tool result's or a document's content): a string or a list of blocks."""
    if content is None and not required:
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _error(path, "Input should be a valid string or a valid list")
    for j, block in enumerate(content):
        _block(block, f"{path}.{j}")


def _system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _error("system", "Input should be a valid string or a valid list")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _error(f"system.{i}.type", "Input should be 'text'")
        _required_str(block, "text", f"system.{i}")


def _metadata(metadata: Any) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise _error("metadata", "Input should be a valid dictionary")
    for key, value in metadata.items():
        if key != "user_id":
            raise _error(f"metadata.{key}", "Extra inputs are not permitted")
        if value is not None and not isinstance(value, str):
            raise _error("metadata.user_id", "Input should be a valid string")


def _tools(tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise _error("tools", "Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _error(f"tools.{i}", "Input should be a valid dictionary")
        if tool.get("type") in (None, "custom"):
            _required_str(tool, "name", f"tools.{i}.custom")
            if not isinstance(tool.get("input_schema"), dict):
                raise _error(f"tools.{i}.custom.input_schema", "Field required")
        elif not isinstance(tool.get("type"), str):
            raise _error(f"tools.{i}.type", "Input should be a valid string")
        elif not isinstance(tool.get("name", ""), str):
            raise _error(f"tools.{i}.name", "Input should be a valid string")


def _tool_choice(choice: Any) -> None:
    if choice is None:
        return
    if not isinstance(choice, dict) or choice.get("type") not in _TOOL_CHOICES:
        raise _error("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] == "tool":
        _required_str(choice, "name", "tool_choice.tool")


def _thinking(body: dict[str, Any], counting: bool) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in _THINKING:
        raise _error("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'")
    if thinking["type"] != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if budget is None:
        raise _error("thinking.enabled.budget_tokens", "Field required")
    _int_at_least(budget, "thinking.enabled.budget_tokens", 1024)
    max_tokens = body.get("max_tokens")
    if not counting and isinstance(max_tokens, int) and budget >= max_tokens:
        raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                             "documentation at https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking"
                             "#max-tokens-and-context-window-size", param="max_tokens")


def _required_str(body: dict[str, Any], name: str, prefix: str = "") -> None:
    path = f"{prefix}.{name}" if prefix else name
    value = body.get(name)
    if value is None:
        raise _error(path, "Field required")
    if not isinstance(value, str):
        raise _error(path, "Input should be a valid string")


def _int_at_least(value: Any, path: str, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _error(path, "Input should be a valid integer")
    if value < low:
        raise _error(path, f"Input should be greater than or equal to {low}")


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _error(name, "Input should be a valid number")
    if value < low:
        raise _error(name, f"Input should be greater than or equal to {low:g}")
    if value > high:
        raise _error(name, f"Input should be less than or equal to {high:g}")


def _error(path: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {message}", param=path)
