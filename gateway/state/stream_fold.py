"""Fold an OpenAI SSE stream into the complete answer it carries, so streamed answers can be cached.

``completion_from_stream`` turns ``chat.completion.chunk`` (or streamed ``text_completion``) events
into the one object a non-stream request would have received. ``stream_replay.stream_from_completion``
is its inverse; the pair round-trips: ``completion_from_stream(stream_from_completion(c, True)) == c``
for any completion, and stream -> completion -> stream -> completion is stable.

Folding rules (the ones OpenAI's own SDK accumulator uses, made stricter where providers differ):
- top-level and choice-level fields: the last non-null value wins (``usage`` arrives in its own
  chunk; every other chunk carries ``usage: null`` or nothing); ``obfuscation`` padding is dropped;
- message strings (``content``, ``refusal``, ``reasoning_content``…) are concatenated, lists
  (``annotations``) extended, objects (``audio``, legacy ``function_call``) merged the same way
  except ids, types and roles, which are replaced;
- ``tool_calls`` are assembled by their ``index``: first ``id`` and ``type`` win, ``function.name``
  and ``function.arguments`` fragments are concatenated;
- ``logprobs``: every list (``content``, ``refusal``; ``tokens``, ``token_logprobs``,
  ``top_logprobs``, ``text_offset`` for text completions) is concatenated across chunks.

A stream is incomplete, and folds to ``None`` so it is never cached, when it lacks ``data: [DONE]``,
when a choice has no ``finish_reason``, or when it carries an error event or unparsable JSON.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from gateway.core.sse import iter_events

_DONE = b"[DONE]"
_REPLACED = frozenset({"id", "type", "role", "index", "object", "created", "model", "expires_at"})
_STREAM_ONLY = frozenset({"obfuscation"})


def parse_events(events: list[bytes]) -> tuple[list[dict[str, Any]], bool] | None:
    """The JSON payloads of an SSE byte stream and whether ``[DONE]`` was seen; ``None`` on an error event."""
    payloads: list[dict[str, Any]] = []
    done = False
    for event in iter_events(b"".join(events)):
        if event.event == "error":
            return None
        raw = event.data
        if raw is None:
            continue
        if raw.strip() == _DONE:
            done = True
            continue
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(payload, dict) or "error" in payload:
            return None
        payloads.append(payload)
    return payloads, done


def completion_from_stream(events: list[bytes]) -> dict[str, Any] | None:
    """The full ``chat.completion`` / ``text_completion`` a complete stream carries, or ``None``."""
    parsed = parse_events(events)
    if parsed is None:
        return None
    chunks, done = parsed
    if not done or not chunks:
        return None
    chat = _is_chat(chunks)
    top: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    tool_calls: dict[int, dict[int, dict[str, Any]]] = {}
    for chunk in chunks:
        for key, value in chunk.items():
            if key not in ("choices", "object") and key not in _STREAM_ONLY:
                _last_non_null(top, key, value)
        for part in chunk.get("choices") or ():
            index = part.get("index", 0)
            if chat:
                _fold_chat_choice(choices, tool_calls.setdefault(index, {}), index, part)
            else:
                _fold_text_choice(choices, index, part)
    if not choices or any(c.get("finish_reason") is None for c in choices.values()):
        return None
    for index, calls in tool_calls.items():
        if calls:
            choices[index]["message"]["tool_calls"] = [calls[k] for k in sorted(calls)]
    head = {"id": top.pop("id", None), "object": "chat.completion" if chat else "text_completion"}
    head["created"] = top.pop("created", None)
    head["model"] = top.pop("model", None)
    head["choices"] = [choices[k] for k in sorted(choices)]
    return {**head, **top}


def _is_chat(chunks: list[dict[str, Any]]) -> bool:
    kind = chunks[0].get("object")
    if kind in ("chat.completion.chunk", "text_completion"):
        return bool(kind == "chat.completion.chunk")
    return any("delta" in c for chunk in chunks for c in chunk.get("choices") or ())


def _last_non_null(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not None or key not in target:
        target[key] = value


def _merge(old: Any, new: Any, key: str) -> Any:
    if new is None:
        return old
    if old is None or key in _REPLACED:
        return copy.deepcopy(new)
    if isinstance(old, str) and isinstance(new, str):
        return old + new
    if isinstance(old, list) and isinstance(new, list):
        return old + copy.deepcopy(new)
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for k, v in new.items():
            merged[k] = _merge(merged.get(k), v, k) if k in merged else copy.deepcopy(v)
        return merged
    return copy.deepcopy(new)


def _fold_common(acc: dict[str, Any], part: dict[str, Any], skip: tuple[str, ...]) -> None:
    if part.get("logprobs") is not None:
        acc["logprobs"] = _merge(acc["logprobs"], part["logprobs"], "logprobs")
    if part.get("finish_reason") is not None:
        acc["finish_reason"] = part["finish_reason"]
    for key, value in part.items():
        if key not in skip and key not in ("index", "logprobs", "finish_reason"):
            _last_non_null(acc, key, value)


def _fold_chat_choice(
    choices: dict[int, dict[str, Any]], calls: dict[int, dict[str, Any]], index: int, part: dict[str, Any]
) -> None:
    acc = choices.get(index)
    if acc is None:
        acc = choices[index] = {
            "index": index, "message": {"role": "assistant", "content": None}, "logprobs": None, "finish_reason": None,
        }
    message = acc["message"]
    for key, value in (part.get("delta") or {}).items():
        if key == "tool_calls":
            for fragment in value or ():
                _fold_tool_call(calls, fragment)
        elif key in message:
            message[key] = _merge(message[key], value, key)
        else:
            message[key] = copy.deepcopy(value)
    _fold_common(acc, part, ("delta",))


def _fold_tool_call(calls: dict[int, dict[str, Any]], fragment: dict[str, Any]) -> None:
    index = fragment.get("index")
    if index is None:  # some servers omit it: a fragment with an id starts a new call
        index = len(calls) if fragment.get("id") or not calls else max(calls)
    call = calls.get(index)
    if call is None:
        call = calls[index] = {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    if fragment.get("id") and not call["id"]:
        call["id"] = fragment["id"]
    if fragment.get("type"):
        call["type"] = fragment["type"]
    function = fragment.get("function") or {}
    name = function.get("name")
    if name and name != call["function"]["name"]:  # some servers repeat the full name in every fragment
        call["function"]["name"] += name
    if function.get("arguments"):
        call["function"]["arguments"] += function["arguments"]
    for key, value in fragment.items():
        if key not in ("index", "id", "type", "function"):
            _last_non_null(call, key, value)


def _fold_text_choice(choices: dict[int, dict[str, Any]], index: int, part: dict[str, Any]) -> None:
    acc = choices.get(index)
    if acc is None:
        acc = choices[index] = {"text": "", "index": index, "logprobs": None, "finish_reason": None}
    if isinstance(part.get("text"), str):
        acc["text"] += part["text"]
    _fold_common(acc, part, ("text",))


class StreamCapture:
    """Collects the events a relay passes on, to cache the answer once the stream has ended.

    Feed it every upstream event (before any usage event is stripped for the client); past
    ``max_bytes`` it stops collecting and ``completion()`` is ``None``, so huge answers are not cached.
    """

    __slots__ = ("_events", "_size", "_max", "overflow")

    def __init__(self, max_bytes: int = 1024 * 1024) -> None:
        self._events: list[bytes] = []
        self._size = 0
        self._max = max_bytes
        self.overflow = False

    def add(self, event: bytes) -> None:
        if self.overflow:
            return
        self._size += len(event)
        if self._size > self._max:
            self.overflow = True
            self._events.clear()
            return
        self._events.append(event)

    def completion(self) -> dict[str, Any] | None:
        return None if self.overflow else completion_from_stream(self._events)

    def events(self) -> list[bytes] | None:
        """The events collected, or ``None`` past ``max_bytes``."""
        return None if self.overflow else self._events
