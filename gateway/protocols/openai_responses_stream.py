"""An OpenAI chat chunk stream → the Responses event stream, incrementally and sans-io.

Feed each upstream chunk (a dict, an ``SSEEvent`` or raw bytes); each call returns the bytes to send
the client, possibly empty. Every event carries its ``sequence_number``; the sequence is::

    response.created, response.in_progress,
    per output item: response.output_item.added,
        reasoning: response.content_part.added, response.reasoning_text.delta*, response.reasoning_text.done,
                   response.content_part.done
        message:   response.content_part.added, response.output_text.delta* (or refusal.delta*), .done,
                   response.content_part.done
        function:  response.function_call_arguments.delta*, response.function_call_arguments.done
        custom:    response.custom_tool_call_input.delta, response.custom_tool_call_input.done
      response.output_item.done
    response.completed (or response.incomplete when the output hit its limit)

Items are sequential: one closes when the next opens. A custom tool's input is sent whole when its call
ends (its chat arguments are JSON around the text, which cannot be unwrapped piece by piece). A stream
that ends without a finish reason, or ``fail(error)``, ends with ``error`` and ``response.failed``
(holding the output finished so far) — never a silent truncation. After the end every feed returns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.errors import GatewayError, UpstreamProtocolError
from gateway.core.sse import SSEEvent
from gateway.core.types import Usage
from gateway.protocols.chat_chunks import DONE, ChunkFeed, as_dict, as_list, chunk_of
from gateway.protocols.openai_responses_response import (
    ResponsesContext,
    call_item,
    custom_input,
    message_item,
    reasoning_item,
    text_part,
    usage_from_chat,
)
from gateway.protocols.openai_responses_tools import ToolOrigin
from gateway.protocols.sse_writer import named_event

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_DELTA = {"reasoning": "response.reasoning_text.delta", "message": "response.output_text.delta",
          "refusal": "response.refusal.delta"}
_DONE = {"reasoning": ("response.reasoning_text.done", "text"), "message": ("response.output_text.done", "text"),
         "refusal": ("response.refusal.done", "refusal")}


@dataclass(slots=True)
class _Item:
    kind: str  # "reasoning", "message", "refusal", "call"
    output_index: int
    item_id: str
    text: str = ""
    call_id: str = ""
    name: str = ""
    custom: bool = False


class ResponsesStream:
    """One Responses stream being translated; see the module docstring for the contract."""

    def __init__(self, context: ResponsesContext) -> None:
        self.context = context
        self.finished = False
        self._sequence = 0
        self._started = False
        self._open: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self._pending: dict[int, list[str]] = {}  # tool call index → id, name, arguments before its name is known
        self._output: list[dict[str, Any]] = []
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None
        self._feed: ChunkFeed | None = None

    @property
    def usage(self) -> Usage | None:
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
        out: list[bytes] = [] if self._started else self._start()
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
        """The upstream stream ended: complete the response, or report the truncation."""
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
        if self._pending:
            return b"".join(out) + self.fail(UpstreamProtocolError("The upstream streamed a tool call without a name."))
        if not self._started:
            out += self._start()
        self._close_item(out)
        incomplete = _INCOMPLETE.get(self._finish)
        status = "incomplete" if incomplete else "completed"
        response = self.context.envelope(status, self._output, usage_from_chat(self._usage), incomplete)
        out.append(self._event(f"response.{status}", {"response": response}))
        self.finished = True
        return b"".join(out)

    def fail(self, error: GatewayError) -> bytes:
        """End with an ``error`` event and ``response.failed``, as OpenAI does when a response fails."""
        if self.finished:
            return b""
        out = [] if self._started else self._start()
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        out.append(self._event("error", {"code": error.code or code, "message": error.message, "param": error.param}))
        output = list(self._output)
        if self._open is not None:
            output.append(self._item(self._open, "incomplete"))
        response = self.context.envelope("failed", output, usage_from_chat(self._usage),
                                         error={"code": code, "message": error.message})
        out.append(self._event("response.failed", {"response": response}))
        self.finished = True
        return b"".join(out)

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **payload}
        self._sequence += 1
        return named_event(kind, payload)

    def _start(self) -> list[bytes]:
        self._started = True
        response = self.context.envelope("in_progress", [])
        return [self._event("response.created", {"response": response}),
                self._event("response.in_progress", {"response": response})]

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for name in ("reasoning_content", "reasoning"):
                if isinstance(delta.get(name), str) and delta[name]:
                    self._text("reasoning", delta[name], out)
                    break
            for name, kind in (("content", "message"), ("refusal", "refusal")):
                if isinstance(delta.get(name), str) and delta[name]:
                    self._text(kind, delta[name], out)
            for call in as_list(delta.get("tool_calls")):
                if isinstance(call, dict):
                    self._tool(call, out)
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])

    def _text(self, kind: str, text: str, out: list[bytes]) -> None:
        item = self._open
        if item is None or item.kind != kind:
            item = self._open_item(kind, "rs" if kind == "reasoning" else "msg", out)
            out.append(self._event("response.content_part.added", {**self._where(item), "content_index": 0,
                                                                   "part": _part(kind, "")}))
        item.text += text
        extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
        out.append(self._event(_DELTA[kind], {**self._where(item), "content_index": 0, "delta": text, **extra}))

    def _tool(self, delta: dict[str, Any], out: list[bytes]) -> None:
        index = delta.get("index", 0)
        if not isinstance(index, int):
            raise UpstreamProtocolError("The upstream streamed a tool call without an index.")
        function = as_dict(delta.get("function"))
        arguments = _str(function.get("arguments"))
        item = self._calls.get(index)
        if item is None:
            pending = self._pending.setdefault(index, ["", "", ""])
            if isinstance(delta.get("id"), str):
                pending[0] = pending[0] or delta["id"]
            if isinstance(function.get("name"), str):
                pending[1] += function["name"]
            pending[2] += arguments
            if not pending[1]:
                return
            call_id, name, arguments = self._pending.pop(index)
            item = self._open_call(index, call_id or f"call_{self.context.response_id}_{index}", name, out)
        elif item is not self._open:
            raise UpstreamProtocolError("The upstream interleaved the arguments of two tool calls.")
        if arguments:
            item.text += arguments
            if not item.custom:
                out.append(self._event("response.function_call_arguments.delta", {**self._where(item), "delta": arguments}))

    def _open_call(self, index: int, call_id: str, name: str, out: list[bytes]) -> _Item:
        origin = self.context.tools.get(name, ToolOrigin(name))
        custom = origin.kind == "custom"
        self._close_item(out)
        item = _Item("call", len(self._output), self.context.item_id("ctc" if custom else "fc", len(self._output)),
                     call_id=call_id, name=name, custom=custom)
        self._calls[index] = self._open = item
        if not custom:  # a custom call is announced whole when it ends
            out.append(self._event("response.output_item.added", {"output_index": item.output_index,
                                                                  "item": self._item(item, "in_progress")}))
        return item

    def _open_item(self, kind: str, prefix: str, out: list[bytes]) -> _Item:
        self._close_item(out)
        item = _Item(kind, len(self._output), self.context.item_id(prefix, len(self._output)))
        self._open = item
        out.append(self._event("response.output_item.added", {"output_index": item.output_index,
                                                              "item": self._item(item, "in_progress", empty=True)}))
        return item

    def _close_item(self, out: list[bytes]) -> None:
        item, self._open = self._open, None
        if item is None:
            return
        where = self._where(item)
        if item.kind in _DONE:
            name, field = _DONE[item.kind]
            extra: dict[str, Any] = {"logprobs": []} if item.kind == "message" else {}
            out.append(self._event(name, {**where, "content_index": 0, field: item.text, **extra}))
            out.append(self._event("response.content_part.done", {**where, "content_index": 0,
                                                                 "part": _part(item.kind, item.text)}))
        elif item.custom:
            text = custom_input(item.text)
            out.append(self._event("response.output_item.added", {"output_index": item.output_index,
                                                                  "item": {**self._item(item, "in_progress"), "input": ""}}))
            out.append(self._event("response.custom_tool_call_input.delta", {**where, "delta": text}))
            out.append(self._event("response.custom_tool_call_input.done", {**where, "input": text}))
        else:
            out.append(self._event("response.function_call_arguments.done", {**where, "arguments": item.text,
                                                                            "name": self._item(item, "completed")["name"]}))
        done = self._item(item, "completed")
        self._output.append(done)
        out.append(self._event("response.output_item.done", {"output_index": item.output_index, "item": done}))

    def _item(self, item: _Item, status: str, *, empty: bool = False) -> dict[str, Any]:
        if item.kind == "reasoning":
            built = reasoning_item(item.item_id, item.text, status)
            if empty:
                built["content"] = []
            return built
        if item.kind in ("message", "refusal"):
            built = message_item(item.item_id, item.text, refusal=item.kind == "refusal", status=status)
            if empty:
                built["content"] = []
            return built
        built = call_item(self.context, item.output_index, item.call_id, item.name, item.text, status)
        built["id"] = item.item_id
        return built

    @staticmethod
    def _where(item: _Item) -> dict[str, Any]:
        return {"item_id": item.item_id, "output_index": item.output_index}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _part(kind: str, text: str) -> dict[str, Any]:
    if kind == "reasoning":
        return {"type": "reasoning_text", "text": text}
    return text_part(text, refusal=kind == "refusal")
