"""Relay an upstream stream to the client, metering what passes.

Events pass through untouched, one write per upstream read. Each data event is parsed once, here:
its usage is noted, the text it carries is kept for counting (content, reasoning, tool-call
arguments, legacy ``text``) and a ``finish_reason`` is noted; the usage-only event the gateway asked
for on the client's behalf is dropped. A failure after the first byte ends the stream with an SSE
error event.

What a stream costs is what the upstream generated, whatever the client does:

- the usage the upstream reported, when it did;
- otherwise (the client left before the usage event, or the upstream never sends one) the gateway's
  own count: the prompt estimate and the text relayed, each rounded up by ``ESTIMATE_MARGIN`` and
  marked ``estimated``. Token estimates run within ~10% of a real tokenizer in aggregate; the margin
  keeps a client that leaves early from ever paying less than one that stays;
- a client that leaves after the answer's ``finish_reason`` does not cut the upstream: everything is
  generated, so the relay reads on to the usage event (bounded by the deployment's idle timeout) and
  the request is charged exactly.

The response calls ``close`` exactly once when it ends for any reason; ``close`` releases the lease
(connection, slot, probe, in-flight count) and hands the outcome to the pipeline's accounting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import orjson

from gateway.core.errors import GatewayError, UpstreamProtocolError
from gateway.core.sse import SSEDecodeError, SSEDecoder
from gateway.core.types import Usage
from gateway.pipeline.call import Call
from gateway.pipeline.responses import sse_error
from gateway.routing.lease import StreamLease
from gateway.routing.tokens import estimate_text_tokens
from gateway.state import StreamCapture

ESTIMATE_MARGIN = 1.2
_TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")

EndHook = Callable[["StreamRelay", str, Usage], None]


class StreamRelay:
    """An async iterator of the bytes to send, plus ``close``; see the module docstring."""

    __slots__ = ("call", "lease", "capture", "usage", "error", "ok", "ttft", "finished", "_hidden_usage",
                 "_on_end", "_decoder", "_upstream", "_pieces", "_text_events", "_done", "_closed")

    def __init__(self, call: Call, lease: StreamLease, *, hidden_usage: bool, capture: StreamCapture | None,
                 on_end: EndHook) -> None:
        self.call = call
        self.lease = lease
        self.capture = capture
        self.usage: Usage | None = None
        self.error: GatewayError | None = None
        self.ok = False
        self.ttft: float | None = None
        self.finished = False
        self._hidden_usage = hidden_usage
        self._on_end = on_end
        self._decoder = SSEDecoder()
        self._upstream: Any = None
        self._pieces: list[str] = []
        self._text_events = 0
        self._done = False
        self._closed = False

    def __aiter__(self) -> StreamRelay:
        return self

    async def __anext__(self) -> bytes:
        if self._upstream is None:
            self._upstream = aiter(self.lease)
            self.ttft = time.perf_counter() - self.call.started
            first = self._meter(self.lease.first)
            if first:
                return first
        if self._done:
            raise StopAsyncIteration
        try:
            while True:
                item = self._meter(await anext(self._upstream))
                if item:
                    return item
        except StopAsyncIteration:
            self.ok = self._done = True
            raise
        except GatewayError as exc:
            self.error, self._done = exc, True
            return sse_error(exc)

    @property
    def read_on_after_client_left(self) -> bool:
        """Whether the upstream has finished generating (only the usage event and ``[DONE]`` are left)."""
        return self.finished and not self._done

    def _meter(self, item: bytes) -> bytes:
        if self.capture is not None:
            self.capture.add(item)
        try:
            events = self._decoder.feed(item)
        except SSEDecodeError as exc:
            raise UpstreamProtocolError(f"deployment {self.lease.deployment.name!r} sent a malformed stream") from exc
        hidden: list[bytes] = []
        for event in events:
            data = event.data
            if data is None or data[:1] != b"{":
                continue
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue  # the provider reports malformed events; nothing to count here
            if not isinstance(payload, dict):
                continue
            if isinstance(payload.get("usage"), dict):
                self.usage = Usage.from_openai(payload["usage"])
                if self._hidden_usage and not payload.get("choices"):
                    hidden.append(event.raw)
                    continue
            choices = payload.get("choices")
            if isinstance(choices, list):
                self._count(choices)
        for raw in hidden:
            item = item.replace(raw, b"", 1)
        return item

    def _count(self, choices: list[Any]) -> None:
        before = len(self._pieces)
        pieces = self._pieces
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
            for name in _TEXT_FIELDS:
                value = delta.get(name)
                if isinstance(value, str) and value:
                    pieces.append(value)
            for tool_call in delta.get("tool_calls") or ():
                function = tool_call.get("function") if isinstance(tool_call, dict) else None
                if isinstance(function, dict):
                    pieces += [v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str) and v]
        if len(pieces) > before:
            self._text_events += 1

    def charged_usage(self) -> Usage:
        """What the upstream generated: its own usage, or the gateway's rounded-up count."""
        if self.usage is not None:
            return self.usage
        facts = self.call.facts
        prompt = facts.prompt_tokens if facts is not None else 0
        generated = max(self._text_events, estimate_text_tokens("".join(self._pieces)) if self._pieces else 0)
        return Usage(math.ceil(prompt * ESTIMATE_MARGIN), math.ceil(generated * ESTIMATE_MARGIN), estimated=True)

    async def close(self) -> None:
        """Release the lease and account for the stream; only the first call does anything."""
        if self._closed:
            return
        self._closed = True
        if self._upstream is None:  # the client left before the first byte was sent: it was generated anyway
            self._meter(self.lease.first)
        usage = self.charged_usage()
        try:
            await self.lease.aclose(ok=self.ok, ttft_s=self.ttft or 0.0, output_tokens=usage.completion_tokens,
                                    error=self.error)
        finally:
            outcome = "ok" if self.ok else "error" if self.error is not None else "cancelled"
            self._on_end(self, outcome, usage)


class CachedStream:
    """A cached answer played back as events; ``close`` accounts for it once."""

    __slots__ = ("_events", "_on_close", "_closed")

    def __init__(self, events: list[bytes], on_close: Callable[[], None]) -> None:
        self._events = iter(events)
        self._on_close = on_close
        self._closed = False

    def __aiter__(self) -> CachedStream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None

    read_on_after_client_left = False

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close()
