"""An Anthropic Messages request → an OpenAI chat completions request (for an upstream that speaks chat).

Mapped: ``system`` (string or text blocks, and system-role messages) → a system message; text, image
(base64 or URL) and document (PDF, plain text, content) blocks → chat content parts; ``tool_use`` →
assistant ``tool_calls``; ``tool_result`` → ``tool`` messages (placed before the rest of the user turn,
as chat requires); ``tools``/``tool_choice``/``disable_parallel_tool_use``; ``stop_sequences`` → ``stop``;
``temperature``/``top_p``/``top_k``; ``metadata.user_id`` → ``user``; ``thinking`` and
``output_config.effort`` → ``reasoning_effort`` where the target reasons; structured output
(``output_config.format``, ``output_format``) → ``response_format``; streams ask for usage.

Dropped and named (advisory): ``cache_control`` (a prompt-cache hint), thinking blocks of earlier turns
(chat templates discard them), ``thinking``/effort for a target that does not reason, ``top_k`` for one
that does not take it, ``context_management``, ``service_tier``, ``container``, ``inference_geo``, fields
this module does not know, and hosted tools (``web_search_…``, ``bash_…``, ``mcp_servers``, …) that a chat
upstream cannot run — removed from the offered tools. Clamped: ``max_tokens`` to the target's cap.
Refused (400): what would change the answer — a file only Anthropic can read (``file`` sources), a
document URL, ``tool_choice`` naming a removed hosted tool or asking for a tool when none remain.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.errors import InvalidRequest
from gateway.protocols.translation import ANY_CHAT_TARGET, ChatTarget, Translation

_MAPPED = frozenset((
    "model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p", "top_k", "stream",
    "tools", "tool_choice", "metadata", "thinking", "output_config", "output_format",
))
_FINISHED_HISTORY = frozenset(("thinking", "redacted_thinking", "server_tool_use", "web_search_tool_result",
                               "web_fetch_tool_result", "code_execution_tool_result", "mcp_tool_use",
                               "mcp_tool_result", "container_upload"))
_EFFORT_BY_BUDGET = ((4096, "low"), (16384, "medium"))


def messages_to_chat(body: dict[str, Any], target: ChatTarget = ANY_CHAT_TARGET) -> Translation:
    """Translate a validated Messages request (see ``anthropic_messages_validation``)."""
    out = Translation({"model": body["model"]})
    system = _system_texts(body.get("system"), out)
    messages: list[dict[str, Any]] = []
    for message in body["messages"]:
        if message["role"] == "system":
            # Hoisted: chat templates of open models (Qwen's among them) refuse a system message
            # anywhere but first.
            system += _system_texts(message["content"], out)
        else:
            messages += _message(message, out)
    if system:
        messages.insert(0, {"role": "system", "content": "\n\n".join(system)})
    out.body["messages"] = messages
    if "max_tokens" in body:
        out.clamp_max_tokens("max_tokens", body["max_tokens"], target)
    _sampling(body, target, out)
    _tools(body, out)
    _reasoning_and_format(body, target, out)
    if body.get("stream"):
        out.body["stream"] = True
        out.body["stream_options"] = {"include_usage": True}
    for name in body:
        if name not in _MAPPED:
            out.drop(name)
    return out


def _system_texts(system: Any, out: Translation) -> list[str]:
    if isinstance(system, str):
        return [system] if system else []
    if not system:
        return []
    if any("cache_control" in block for block in system):
        out.drop("cache_control")
    return [block["text"] for block in system if block.get("type") == "text" and block["text"]]


def _message(message: dict[str, Any], out: Translation) -> list[dict[str, Any]]:
    role, content = message["role"], message["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if role == "assistant":
        return [_assistant(content, out)]
    return _user(content, out)


def _assistant(blocks: list[dict[str, Any]], out: Translation) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        _note_cache_control(block, out)
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block["input"]).decode()
            calls.append({"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}})
        elif kind in _FINISHED_HISTORY:
            out.drop(f"messages.{kind}")
        else:
            raise _refused(f"an assistant `{kind}` block")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _user(blocks: list[dict[str, Any]], out: Translation) -> list[dict[str, Any]]:
    """Tool results first (chat wants them right after the assistant's calls), then the rest of the turn."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        _note_cache_control(block, out)
        if block["type"] == "tool_result":
            text, images = _tool_result(block, out)
            results.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
            parts += images  # chat tool messages carry text only; the images follow in the user turn
        elif block["type"] in _FINISHED_HISTORY:
            out.drop(f"messages.{block['type']}")
        else:
            parts += _content_part(block)
    if not parts:
        return results
    if all(part["type"] == "text" for part in parts) and len(parts) == 1:
        return [*results, {"role": "user", "content": parts[0]["text"]}]
    return [*results, {"role": "user", "content": parts}]


def _tool_result(block: dict[str, Any], out: Translation) -> tuple[str, list[dict[str, Any]]]:
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for inner in content:
            _note_cache_control(inner, out)
            for part in _content_part(inner):
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    images.append(part)
    text = "\n".join(texts)
    # Chat has no error flag on a tool message; say it in the text, where the model will read it.
    return (f"Error: {text}" if block.get("is_error") else text), images


def _content_part(block: dict[str, Any]) -> list[dict[str, Any]]:
    kind = block["type"]
    if kind == "text":
        return [{"type": "text", "text": block["text"]}]
    if kind == "image":
        return [{"type": "image_url", "image_url": {"url": _image_url(block["source"])}}]
    if kind == "document":
        return _document(block)
    if kind == "search_result":
        content = block.get("content")
        texts = [b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)] \
            if isinstance(content, list) else []
        title = block.get("title") or block.get("source") or ""
        return [{"type": "text", "text": "\n".join([str(title), *texts]).strip()}]
    raise _refused(f"a `{kind}` content block")


def _image_url(source: dict[str, Any]) -> str:
    if source["type"] == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source["type"] == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    raise _refused(f"an image with a `{source['type']}` source")


def _document(block: dict[str, Any]) -> list[dict[str, Any]]:
    source = block["source"]
    title = block.get("title")
    prefix = f"{title}\n\n" if isinstance(title, str) and title else ""
    if source["type"] == "text":
        return [{"type": "text", "text": prefix + str(source.get("data", ""))}]
    if source["type"] == "content":
        inner = source["content"]
        blocks = [{"type": "text", "text": inner}] if isinstance(inner, str) else inner
        parts = [p for b in blocks for p in _content_part(b)]
        return ([{"type": "text", "text": prefix.strip()}] if prefix else []) + parts
    if source["type"] == "base64":
        media_type = source.get("media_type", "application/pdf")
        file = {"filename": title if isinstance(title, str) and title else "document.pdf",
                "file_data": f"data:{media_type};base64,{source.get('data', '')}"}
        return [{"type": "file", "file": file}]
    raise _refused(f"a document with a `{source['type']}` source")


def _sampling(body: dict[str, Any], target: ChatTarget, out: Translation) -> None:
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out.body[name] = body[name]
    if body.get("top_k") is not None:
        if target.top_k:
            out.body["top_k"] = body["top_k"]
        else:
            out.drop("top_k")
    if body.get("stop_sequences"):
        out.body["stop"] = list(body["stop_sequences"])
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str) and user:
        out.body["user"] = user


def _tools(body: dict[str, Any], out: Translation) -> None:
    removed: set[str] = set()
    functions = []
    for tool in body.get("tools") or ():
        _note_cache_control(tool, out)
        if tool.get("type") not in (None, "custom"):
            removed.add(tool.get("name") or tool["type"])
            out.drop(f"tools.{tool['type']}")
            continue
        function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        functions.append({"type": "function", "function": function})
    if body.get("mcp_servers"):
        out.drop("mcp_servers")
    choice = body.get("tool_choice")
    if choice is not None and choice["type"] == "tool" and choice["name"] in removed:
        raise InvalidRequest(f"tool_choice: the tool `{choice['name']}` runs on Anthropic's servers and cannot be "
                             "run by the model this request is routed to.", param="tool_choice")
    if not functions:
        if choice is not None and choice["type"] in ("any", "tool"):
            raise InvalidRequest("tool_choice: a tool is required but no tool the routed model can call was given.",
                                 param="tool_choice")
        return
    out.body["tools"] = functions
    if choice is None:
        return
    kind = choice["type"]
    if kind == "tool":
        out.body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        out.body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out.body["parallel_tool_calls"] = False


def _reasoning_and_format(body: dict[str, Any], target: ChatTarget, out: Translation) -> None:
    effort = _thinking_effort(body.get("thinking"))
    config = body.get("output_config")
    fmt = body.get("output_format")
    if isinstance(config, dict):
        if isinstance(config.get("effort"), str):
            effort = {"max": "high"}.get(config["effort"], config["effort"])
        fmt = config.get("format", fmt)
        for name in config:
            if name not in ("effort", "format"):
                out.drop(f"output_config.{name}")
    if effort is not None:
        if target.reasoning:
            out.body["reasoning_effort"] = effort
        else:
            out.drop("thinking")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        out.body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True}}
    elif fmt is not None:
        raise InvalidRequest("output_format: only `json_schema` output formats can be translated.", param="output_format")


def _thinking_effort(thinking: Any) -> str | None:
    if not isinstance(thinking, dict):
        return None
    if thinking["type"] == "adaptive":
        return "medium"
    if thinking["type"] != "enabled":
        return None
    budget = thinking["budget_tokens"]
    return next((effort for limit, effort in _EFFORT_BY_BUDGET if budget <= limit), "high")


def _note_cache_control(block: dict[str, Any], out: Translation) -> None:
    if "cache_control" in block:
        out.drop("cache_control")


def _refused(what: str) -> InvalidRequest:
    return InvalidRequest(f"messages: {what} cannot be translated for the model this request is routed to.",
                          param="messages")
