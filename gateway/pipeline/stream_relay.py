"""Relay an upstream stream to the client, metering what passes and translating where needed.

Each upstream read is cut into events once (the one SSE decoder) and each event is read once by the
meter of the API the upstream was called on (``stream_meters``): usage, generated text, finish. Then
either the events pass through untouched, one write per upstream read (less the usage-only event the
gateway asked for on the client's behalf), or — when the client speaks another protocol than the
upstream (Anthropic Messages or OpenAI Responses over chat completions) — a renderer from
``gateway.protocols`` turns them into the client's events. A failure after the first byte ends the
stream with an error event in the client's protocol.

What a stream costs is what the upstream generated, whatever the client does: the usage the upstream
reported, else the meter's rounded-up count (see ``stream_meters.ESTIMATE_MARGIN``); a client that
leaves after generation finished does not cut the upstream — the relay reads on to the usage.

The response calls ``close`` exactly once when it ends for any reason; ``close`` releases the lease
(connection, slot, probe, in-flight count) and hands the outcome to the pipeline's accounting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from gateway.core.errors import GatewayError, UpstreamProtocolError
from gateway.core.sse import SSEDecodeError, SSEDecoder
from gateway.core.types import Usage
from gateway.pipeline.call import Call
from gateway.pipeline.stream_meters import Meter
from gateway.routing.lease import StreamLease
from gateway.state import StreamCapture

EndHook = Callable[["StreamRelay", str, Usage], None]


class Renderer(Protocol):
    """A stream translator of ``gateway.protocols`` (upstream chat chunks in, client events out)."""

    def feed(self, chunk: dict[str, Any]) -> bytes: ...
    def feed_bytes(self, data: bytes) -> bytes: ...
    def close(self) -> bytes: ...
    def fail(self, error: GatewayError) -> bytes: ...


class StreamRelay:
    """An async iterator of the bytes to send, plus ``close``; see the module docstring."""

    __slots__ = ("call", "lease", "meter", "renderer", "capture", "error", "ok", "ttft", "_error_event",
                 "_on_end", "_decoder", "_upstream", "_done", "_closed")

    def __init__(self, call: Call, lease: StreamLease, meter: Meter, *, renderer: Renderer | None = None,
                 error_event: Callable[[GatewayError], bytes], capture: StreamCapture | None,
                 on_end: EndHook) -> None:
        self.call = call
        self.lease = lease
        self.meter = meter
        self.renderer = renderer
        self.capture = capture
        self.error: GatewayError | None = None
        self.ok = False
        self.ttft: float | None = None
        self._error_event = error_event
        self._on_end = on_end
        self._decoder = SSEDecoder()
        self._upstream: Any = None
        self._done = False
        self._closed = False

    def __aiter__(self) -> StreamRelay:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        try:
            if self._upstream is None:
                self._upstream = aiter(self.lease)
                self.ttft = time.perf_counter() - self.call.started
                first = self._relayed(self.lease.first)
                if first:
                    return first
            while True:
                try:
                    item = await anext(self._upstream)
                except StopAsyncIteration:
                    self.ok = self._done = True
                    tail = self.renderer.close() if self.renderer is not None else b""
                    if tail:
                        return tail
                    raise
                out = self._relayed(item)
                if out:
                    return out
        except GatewayError as exc:
            self.error, self._done = exc, True
            return self.renderer.fail(exc) if self.renderer is not None else self._error_event(exc)

    @property
    def read_on_after_client_left(self) -> bool:
        """Whether the upstream has finished generating (only usage and the end marker are left)."""
        return self.meter.finished and not self._done

    def _relayed(self, item: bytes) -> bytes:
        """Meter ``item``; the bytes the client gets for it."""
        if self.capture is not None:
            self.capture.add(item)
        try:
            events = self._decoder.feed(item)
        except SSEDecodeError as exc:
            raise UpstreamProtocolError(f"deployment {self.lease.deployment.name!r} sent a malformed stream") from exc
        renderer = self.renderer
        if renderer is not None:
            out = []
            for event in events:
                payload, _ = self.meter.observe(event)
                if payload is not None:
                    out.append(renderer.feed(payload))
            return b"".join(out)
        passes = self.meter.passes
        for event in events:
            if not passes(event):
                item = item.replace(event.raw, b"", 1)
        return item

    async def close(self) -> None:
        """Release the lease and account for the stream; only the first call does anything."""
        if self._closed:
            return
        self._closed = True
        if self._upstream is None:  # the client left before the first byte was sent: it was generated anyway
            self._meter_only(self.lease.first)
        facts = self.call.facts
        usage = self.meter.charged(facts.prompt_tokens if facts is not None else 0)
        try:
            await self.lease.aclose(ok=self.ok, ttft_s=self.ttft or 0.0, output_tokens=usage.completion_tokens,
                                    error=self.error)
        finally:
            outcome = "ok" if self.ok else "error" if self.error is not None else "cancelled"
            self._on_end(self, outcome, usage)

    def _meter_only(self, item: bytes) -> None:
        try:
            for event in self._decoder.feed(item):
                self.meter.observe(event)
        except SSEDecodeError:
            pass


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
