"""Relay an upstream stream to the client: events pass through untouched, usage is read on the way,
the usage-only event is dropped when the client did not ask for it, and a failure after the first
byte ends the stream with an SSE error event. Cleanup and accounting run exactly once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson

from gateway.core.errors import GatewayError
from gateway.core.types import Usage
from gateway.pipeline.call import Call
from gateway.pipeline.responses import sse_error
from gateway.routing.executor import Execution, Executor
from gateway.state import StreamCapture


@dataclass(slots=True)
class StreamState:
    call: Call
    execution: Execution
    strip_usage: bool
    capture: StreamCapture | None = None
    usage: Usage | None = None
    error: GatewayError | None = None
    ok: bool = False
    ttft: float | None = None
    ended: bool = False


async def relay(st: StreamState, end: Callable[[StreamState], object]) -> AsyncIterator[bytes]:
    stream = st.execution.stream
    assert stream is not None
    st.ttft = time.perf_counter() - st.call.started
    capture = st.capture
    try:
        first = stream.first
        if capture is not None:
            capture.add(first)
        yield _read_usage(st, first)
        async for item in stream:
            if capture is not None:
                capture.add(item)
            if b'"usage":{' in item or b'"usage": {' in item:
                item = _read_usage(st, item)
                if not item:
                    continue
            yield item
        st.ok = True
    except GatewayError as exc:
        st.error = exc
        yield sse_error(exc)
    finally:
        await end(st)  # type: ignore[misc]


async def close_upstream(st: StreamState, executor: Executor) -> bool:
    """Release the upstream connection and report the stream's end; False if that was done already."""
    if st.ended:
        return False
    st.ended = True
    execution = st.execution
    assert execution.stream is not None
    try:
        await execution.stream.aclose()
    finally:
        usage = st.usage
        executor.stream_finished(execution, ok=st.ok, ttft_s=st.ttft or 0.0,
                                 output_tokens=usage.completion_tokens if usage else 0, error=st.error)
    return True


def _read_usage(st: StreamState, item: bytes) -> bytes:
    """Note the usage an item carries; drop the usage-only event if the client did not ask for it.

    An item may hold several events; only one carrying usage is ever parsed or cut out."""
    if b'"usage":{' not in item and b'"usage": {' not in item:
        return item
    events = item.split(b"\n\n")
    kept = []
    for event in events:
        if b'"usage":{' in event or b'"usage": {' in event:
            usage, usage_only = usage_of(event)
            if usage is not None:
                st.usage = usage
            if usage_only and st.strip_usage:
                continue
        kept.append(event)
    return b"\n\n".join(kept) if len(kept) != len(events) else item


def usage_of(event: bytes) -> tuple[Usage | None, bool]:
    try:
        payload = orjson.loads(event[event.index(b"{"):])
    except (ValueError, orjson.JSONDecodeError):
        return None, False
    return Usage.from_openai(payload.get("usage")), not payload.get("choices")


async def replay(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
