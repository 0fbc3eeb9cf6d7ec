"""An OpenAI chat chunk stream → Anthropic's Messages event stream, incrementally and sans-io.

Feed each upstream chunk (a dict, an ``SSEEvent`` or raw bytes); each call returns the bytes to send
the client, possibly empty. Anthropic's exact sequence comes out::

    message_start, ping,
    (content_block_start, content_block_delta*, content_block_stop)*   thinking → text → tool_use blocks
    message_delta (stop_reason, stop_sequence, usage), message_stop

Blocks are sequential in Anthropic's protocol: a block closes when the next one starts. Reasoning
deltas open a ``thinking`` block, content a ``text`` block, each tool call (by its chat ``index``) a
``tool_use`` block whose arguments stream as ``input_json_delta``; a tool call's block opens once its
name is known. ``close()`` at the upstream's end finishes the message; a stream that ends without a
finish reason, or ``fail(error)``, ends with an ``error`` event instead — never a silent truncation.
After the end every feed returns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import GatewayError, UpstreamProtocolError
from gateway.core.sse import SSEEvent
from gateway.core.types import Usage
from gateway.protocols.anthropic_errors import anthropic_error_event
from gateway.protocols.anthropic_messages_response import stop_reason, usage_from_chat
from gateway.protocols.chat_chunks import DONE, ChunkFeed, as_dict, as_list, chunk_of
from gateway.protocols.sse_writer import named_event

_PING = named_event("ping", {"type": "ping"})


@dataclass(slots=True)
class _ToolCall:
    id: str
    name: str = ""
    pending: str = ""
    block: int | None = None


class MessagesStream:
    """One Messages stream being translated; see the module docstring for the contract."""

    def __init__(self, *, model: str, message_id: str, input_tokens: int = 0, stop_sequences: Sequence[str] = ()) -> None:
        self.model = model
        self.message_id = message_id
        self.input_tokens = input_tokens
        self.stop_sequences = tuple(stop_sequences)
        self.finished = False
        self._started = False
        self._open: str | int | None = None  # "text", "thinking", a tool call's chat index, or nothing
        self._blocks = 0
        self._tools: dict[int, _ToolCall] = {}
        self._finish: dict[str, Any] | None = None
        self._refused = False
        self._usage: dict[str, Any] | None = None
        self._feed: ChunkFeed | None = None

    @property
    def usage(self) -> Usage | None:
        """The upstream's usage, once it sent it (for accounting)."""
        return Usage.from_openai(self._usage)

    def feed_bytes(self, data: bytes) -> bytes:
        if self._feed is None:
            self._feed = ChunkFeed()
        return b"".join(self.feed_event(event) for event in self._feed.events(data))

    def feed_event(self, event: SSEEvent) -> bytes:
        if self.finished:
            return b""
        try:
            chunk = chunk_of(event)
        except GatewayError as exc:
            return self.fail(exc)
        if chunk is DONE:
            return self.close()
        return self.feed(chunk) if isinstance(chunk, dict) else b""

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if self.finished:
            return b""
        out: list[bytes] = []
        if not self._started:
            out.append(self._message_start())
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        try:
            for choice in as_list(chunk.get("choices")):
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    self._choice(choice, out)
        except GatewayError as exc:
            out.append(self.fail(exc))
        return b"".join(out)

    def close(self) -> bytes:
        """The upstream stream ended: finish the message, or report the truncation."""
        if self.finished:
            return b""
        out: list[bytes] = []
        if self._feed is not None:  # an event whose end was a held-back CR
            feed, self._feed = self._feed, None
            out += [self.feed_event(event) for event in feed.finish()]
            if self.finished:
                return b"".join(out)
        if self._finish is None:
            return b"".join(out) + self.fail(UpstreamProtocolError("The upstream stream ended before the answer was complete."))
        if not self._started:
            out.append(self._message_start())
        try:
            unnamed = [index for index, call in self._tools.items() if call.block is None]
            if unnamed:
                raise UpstreamProtocolError("The upstream streamed a tool call without a name.")
        except GatewayError as exc:
            return b"".join(out) + self.fail(exc)
        self._close_block(out)
        reason, sequence = stop_reason(self._finish, self.stop_sequences, refused=self._refused)
        # Without the upstream's count, message_start's input estimate stands (the SDK keeps it).
        usage = usage_from_chat(self._usage) if self._usage is not None else {"output_tokens": 0}
        out.append(named_event("message_delta", {"type": "message_delta",
                                                 "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                                 "usage": usage}))
        out.append(named_event("message_stop", {"type": "message_stop"}))
        self.finished = True
        return b"".join(out)

    def fail(self, error: GatewayError) -> bytes:
        """End the stream with Anthropic's ``error`` event (what Anthropic sends when it fails mid-stream)."""
        if self.finished:
            return b""
        self.finished = True
        return anthropic_error_event(error)

    def ping(self) -> bytes:
        """A keep-alive for long silences (Anthropic sends ``ping`` events too)."""
        return b"" if self.finished else _PING

    def _message_start(self) -> bytes:
        self._started = True
        message: dict[str, Any] = {"id": self.message_id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                   "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": self.input_tokens, "output_tokens": 0,
                             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
        return named_event("message_start", {"type": "message_start", "message": message}) + _PING

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for name in ("reasoning_content", "reasoning"):
                if isinstance(delta.get(name), str) and delta[name]:
                    self._text_delta("thinking", delta[name], out)
                    break
            for name in ("content", "refusal"):
                if isinstance(delta.get(name), str) and delta[name]:
                    self._text_delta("text", delta[name], out)
                    self._refused = self._refused or name == "refusal"
            for call in as_list(delta.get("tool_calls")):
                if isinstance(call, dict):
                    self._tool_delta(call, out)
        if choice.get("finish_reason"):
            self._finish = choice

    def _text_delta(self, kind: str, text: str, out: list[bytes]) -> None:
        if self._open != kind:
            self._open_block(kind, {"type": "text", "text": ""} if kind == "text"
                             else {"type": "thinking", "thinking": "", "signature": ""}, out)
        delta = {"type": "text_delta", "text": text} if kind == "text" else {"type": "thinking_delta", "thinking": text}
        out.append(named_event("content_block_delta", {"type": "content_block_delta", "index": self._blocks - 1,
                                                       "delta": delta}))

    def _tool_delta(self, delta: dict[str, Any], out: list[bytes]) -> None:
        index = delta.get("index", 0)
        if not isinstance(index, int):
            raise UpstreamProtocolError("The upstream streamed a tool call without an index.")
        function = as_dict(delta.get("function"))
        call = self._tools.get(index)
        if call is None:
            call = self._tools[index] = _ToolCall(id=f"toolu_{self.message_id}_{index}")
        if isinstance(delta.get("id"), str) and delta["id"] and call.block is None:
            call.id = delta["id"]
        if isinstance(function.get("name"), str) and call.block is None:
            call.name += function["name"]
        arguments = _str(function.get("arguments"))
        if call.block is None:
            call.pending += arguments
            if not call.name:
                return
            self._open_block(index, {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}, out)
            call.block, arguments, call.pending = self._blocks - 1, call.pending, ""
        elif self._open != index:
            # Anthropic's blocks cannot reopen; chat servers stream one call after another.
            raise UpstreamProtocolError("The upstream interleaved the arguments of two tool calls.")
        if arguments:
            out.append(named_event("content_block_delta", {
                "type": "content_block_delta", "index": call.block,
                "delta": {"type": "input_json_delta", "partial_json": arguments}}))

    def _open_block(self, key: str | int, block: dict[str, Any], out: list[bytes]) -> None:
        self._close_block(out)
        out.append(named_event("content_block_start", {"type": "content_block_start", "index": self._blocks,
                                                       "content_block": block}))
        self._open = key
        self._blocks += 1

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(named_event("content_block_stop", {"type": "content_block_stop", "index": self._blocks - 1}))
            self._open = None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""
