"""Responses tools ↔ chat function tools, both ways.

- ``function`` tools map one to one.
- ``custom`` (free-form text input) tools become a function taking one string, ``input``; the model's
  call is turned back into a ``custom_tool_call`` with that string.
- ``namespace`` tools (a group, as coding clients send their MCP servers) are flattened to functions
  named ``<namespace>__<name>``; calls are turned back into ``function_call`` items with ``namespace``.
- Hosted tools (``web_search``, ``file_search``, ``code_interpreter``, ``image_generation``, ``mcp``,
  ``local_shell``, ``computer_use_preview``, …) run on OpenAI's servers; a chat upstream cannot run
  them, so they are removed from the offered tools and named.

``tool_origins`` recomputes the chat-name → Responses-tool map from the request alone, so the answer's
translation needs nothing but the request it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACE_SEPARATOR = "__"
CUSTOM_INPUT_SCHEMA = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"],
                       "additionalProperties": False}


@dataclass(frozen=True, slots=True)
class ToolOrigin:
    """Where a chat function name came from in the Responses request."""

    name: str
    kind: str = "function"  # or "custom"
    namespace: str | None = None


def tool_origins(tools: Any) -> dict[str, ToolOrigin]:
    origins: dict[str, ToolOrigin] = {}
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace" and isinstance(tool.get("name"), str):
            for inner in tool.get("tools") or ():
                if isinstance(inner, dict) and isinstance(inner.get("name"), str) and inner.get("type") in ("function", "custom"):
                    flat = f"{tool['name']}{NAMESPACE_SEPARATOR}{inner['name']}"
                    origins[flat] = ToolOrigin(inner["name"], inner["type"], tool["name"])
        elif tool.get("type") in ("function", "custom") and isinstance(tool.get("name"), str):
            origins[tool["name"]] = ToolOrigin(tool["name"], tool["type"])
    return origins


def chat_tools(tools: list[dict[str, Any]], dropped: list[str]) -> list[dict[str, Any]]:
    """The chat tools for Responses ``tools``; names of removed hosted tools are appended to ``dropped``."""
    functions: list[dict[str, Any]] = []
    for tool in tools:
        kind = tool.get("type")
        if kind == "namespace":
            prefix = f"{tool['name']}{NAMESPACE_SEPARATOR}"
            for inner in tool.get("tools") or ():
                functions += chat_tools([{**inner, "name": prefix + str(inner.get("name"))}], dropped)
        elif kind == "function":
            function: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object",
                                                                                                    "properties": {}}}
            for name in ("description", "strict"):
                if tool.get(name) is not None:
                    function[name] = tool[name]
            functions.append({"type": "function", "function": function})
        elif kind == "custom":
            description = str(tool.get("description") or "")
            fmt = tool.get("format")
            if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
                # The grammar cannot be enforced through chat; the model is shown it instead.
                description += f"\n\nThe input must follow this {fmt.get('syntax', '')} grammar:\n{fmt['definition']}"
            functions.append({"type": "function", "function": {"name": tool["name"], "description": description.strip(),
                                                               "parameters": CUSTOM_INPUT_SCHEMA}})
        else:
            dropped.append(f"tools.{kind}")
    return functions
