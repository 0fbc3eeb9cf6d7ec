"""What an upstream stream generated, read event by event, in each upstream protocol.

A meter notes the usage the upstream reported, the text it generated (for the gateway's own count
when no usage comes) and whether generation has finished (only usage and the end marker can follow).
The stream relay asks the meter of the API the upstream was called on: OpenAI chat or completions
chunks, Anthropic Messages events, OpenAI Responses events.

Per event, what a passed-through stream pays is what counts (tens of events per second per stream,
thousands of streams): ``passes`` parses only the events that can change what the gateway knows
(``_worth_reading``: usage, a finish) and keeps the others as they are, to be parsed only if the
upstream never reports usage and the gateway has to count the text itself (``charged``). ``observe``
parses every event, for a translator that needs each one as a dict.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import orjson

from gateway.core.sse import SSEEvent
from gateway.core.types import Endpoint, Usage
from gateway.routing.tokens import estimate_text_tokens

ESTIMATE_MARGIN = 1.2
"""Estimated counts are rounded up by this much: token estimates run within ~10% of a real
tokenizer in aggregate, and a client that leaves early must never pay less than one that stays."""

_CHAT_TEXT = ("content", "reasoning_content", "reasoning", "refusal")
_MESSAGES_TEXT = ("text", "partial_json", "thinking")
_RESPONSES_DELTAS = frozenset({
    "response.output_text.delta", "response.function_call_arguments.delta", "response.reasoning_text.delta",
    "response.refusal.delta", "response.custom_tool_call_input.delta",
})
_RESPONSES_LAST = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _loads(data: bytes) -> dict[str, Any] | None:
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None  # the provider reports malformed events; nothing to count here
    return payload if isinstance(payload, dict) else None


class Meter(ABC):
    """The common part: usage, generated pieces, finish, unread events; the protocol is in subclasses."""

    __slots__ = ("usage", "finished", "hidden_usage", "_pieces", "_text_events", "_unread")

    def __init__(self, *, hidden_usage: bool = False) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.hidden_usage = hidden_usage
        """The gateway asked for a usage event the client did not: ``observe`` says to drop it."""
        self._pieces: list[str] = []
        self._text_events = 0
        self._unread: list[bytes] = []

    @abstractmethod
    def _worth_reading(self, data: bytes) -> bool:
        """Whether an event's data can carry usage or a finish (checked on its bytes, unparsed)."""

    @abstractmethod
    def _read(self, payload: dict[str, Any]) -> bool:
        """Note what a parsed event says; whether the client gets it."""

    def observe(self, event: SSEEvent) -> tuple[dict[str, Any] | None, bool]:
        """The event's JSON payload (``None`` when it has none), and whether to keep it for the client."""
        data = event.data
        payload = _loads(data) if data is not None and data[:1] == b"{" else None
        return payload, True if payload is None else self._read(payload)

    def passes(self, event: SSEEvent) -> bool:
        """For a passed-through stream: note what ``event`` says; whether the client gets it."""
        data = event.data
        if data is None or data[:1] != b"{":
            return True
        if self._worth_reading(data):
            payload = _loads(data)
            return True if payload is None else self._read(payload)
        self._unread.append(data)
        return True

    def _add(self, pieces: list[str]) -> None:
        if pieces:
            self._pieces += pieces
            self._text_events += 1

    def charged(self, prompt_estimate: int) -> Usage:
        """What the upstream generated: its own usage, or the gateway's rounded-up count."""
        if self.usage is None and self._unread:
            unread, self._unread = self._unread, []
            for data in unread:
                payload = _loads(data)
                if payload is not None:
                    self._read(payload)
        if self.usage is not None:
            return self.usage
        generated = max(self._text_events, estimate_text_tokens("".join(self._pieces)) if self._pieces else 0)
        return Usage(math.ceil(prompt_estimate * ESTIMATE_MARGIN), math.ceil(generated * ESTIMATE_MARGIN),
                     estimated=True)


class ChatMeter(Meter):
    """OpenAI chat completion chunks and legacy completion chunks."""

    __slots__ = ()

    def _worth_reading(self, data: bytes) -> bool:
        return b'"usage":' in data or (b'"finish_reason":' in data and b'"finish_reason":null' not in data
                                       and b'"finish_reason": null' not in data)

    def _read(self, payload: dict[str, Any]) -> bool:
        choices = payload.get("choices")
        if isinstance(payload.get("usage"), dict):
            self.usage = Usage.from_openai(payload["usage"])
            if self.hidden_usage and not choices:
                return False
        if isinstance(choices, list):
            self._count(choices)
        return True

    def _count(self, choices: list[Any]) -> None:
        pieces: list[str] = []
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason") is not None:
                self.finished = True
            if isinstance(choice.get("text"), str):
                pieces.append(choice["text"])
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            pieces += [v for name in _CHAT_TEXT if isinstance(v := delta.get(name), str) and v]
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    pieces += [v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str) and v]
        self._add(pieces)


class MessagesMeter(Meter):
    """Anthropic Messages events: usage in ``message_start`` and ``message_delta``."""

    __slots__ = ("_input",)

    def __init__(self, *, hidden_usage: bool = False) -> None:
        super().__init__(hidden_usage=hidden_usage)
        self._input = 0

    def _worth_reading(self, data: bytes) -> bool:
        return b'"message_start"' in data or b'"message_delta"' in data

    def _read(self, payload: dict[str, Any]) -> bool:
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                self._input = sum(int(usage.get(k) or 0) for k in
                                  ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
                self.usage = Usage(self._input, int(usage.get("output_tokens") or 0))
        elif kind == "content_block_delta" and isinstance(payload.get("delta"), dict):
            delta = payload["delta"]
            self._add([v for name in _MESSAGES_TEXT if isinstance(v := delta.get(name), str) and v])
        elif kind == "message_delta":
            self.finished = True
            usage = payload.get("usage")
            if isinstance(usage, dict) and usage.get("output_tokens") is not None:
                self.usage = Usage(self._input or int(usage.get("input_tokens") or 0), int(usage["output_tokens"]))
        return True


class ResponsesMeter(Meter):
    """OpenAI Responses events: usage in the final ``response.completed`` (or ``.incomplete``)."""

    __slots__ = ()

    def _worth_reading(self, data: bytes) -> bool:
        return b'"response.completed"' in data or b'"response.incomplete"' in data or b'"response.failed"' in data

    def _read(self, payload: dict[str, Any]) -> bool:
        kind = payload.get("type")
        if kind in _RESPONSES_DELTAS:
            delta = payload.get("delta")
            self._add([delta] if isinstance(delta, str) and delta else [])
        elif kind in _RESPONSES_LAST:
            self.finished = True
            response = payload.get("response")
            usage = response.get("usage") if isinstance(response, dict) else None
            if isinstance(usage, dict):
                self.usage = Usage.from_openai(usage)
        return True


def meter_for(endpoint: Endpoint, *, hidden_usage: bool) -> Meter:
    """The meter of the API an upstream stream was called on."""
    if endpoint is Endpoint.MESSAGES:
        return MessagesMeter()
    if endpoint is Endpoint.RESPONSES:
        return ResponsesMeter()
    return ChatMeter(hidden_usage=hidden_usage)
