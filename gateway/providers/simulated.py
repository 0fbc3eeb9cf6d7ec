"""The ``simulator`` provider type: an in-process simulated upstream (no network, no keys).

It calls ``gateway.simulator.Simulator`` directly, so it sees exactly the bytes the HTTP simulator
would send, and turns the simulated upstream's failures into the gateway's error hierarchy the way a
network provider must: error statuses, timeouts (``first_byte``, ``idle``, ``total``), dropped
connections, and malformed or truncated streams.

Deployment ``params`` are simulator settings (``gateway.simulator.SimConfig`` fields): ``ttft_ms``,
``tokens_per_second``, ``output_tokens``, ``embedding_dim``, ``fault``, ``seed``, ``api_key``
(the key the simulated upstream demands), ``model_overrides``, ``models``, ``max_hang_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from gateway.core.errors import (
    ContextLengthExceeded,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.core.sse import iter_events
from gateway.core.types import Endpoint, Usage
from gateway.policy.models import Deployment
from gateway.providers.base import LAST_EVENTS, UpstreamCall, UpstreamReply, UpstreamStream
from gateway.providers.registry import ProviderContext
from gateway.providers.retry_after import retry_after_seconds
from gateway.providers.upstream_errors import context_length_exceeded
from gateway.simulator import CUT_CONNECTION, SimConfig, SimResponse, Simulator
from gateway.simulator.wire import DONE_EVENT


class SimulatedProvider:
    """A ``Provider`` backed by an in-process ``Simulator`` (one per deployment)."""

    def __init__(self, deployment: Deployment, context: ProviderContext) -> None:
        self.name: str = deployment.name
        self.model: str = deployment.model
        params = dict(deployment.params)
        self.simulator = Simulator(SimConfig.from_kwargs(**params))
        # Tests and the app can reach each deployment's simulator (e.g. for its ledger).
        context.shared.setdefault("simulators", {})[self.name] = self.simulator
        headers = {k.lower(): str(v) for k, v in deployment.headers.items()}
        headers["content-type"] = "application/json"
        if deployment.api_key:
            headers["authorization"] = f"Bearer {deployment.api_key}"
        self._headers = headers

    async def complete(self, call: UpstreamCall) -> UpstreamReply:
        body = {**call.body, "stream": False} if call.body.get("stream") else call.body
        budget = call.timeouts.head
        try:
            async with asyncio.timeout(budget):
                reply = await self._send(call, body)
        except TimeoutError:
            raise UpstreamTimeout(f"{self.name}: no response within {budget:g}s") from None
        self._raise_for_failure(reply)
        try:
            parsed = orjson.loads(reply.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(f"{self.name}: response body is not valid JSON") from exc
        if not isinstance(parsed, dict):
            raise UpstreamProtocolError(f"{self.name}: response body is not a JSON object")
        return UpstreamReply(reply.body, reply.status, Usage.from_openai(parsed.get("usage")), parsed)

    async def open_stream(self, call: UpstreamCall) -> UpstreamStream:
        body = call.body if call.body.get("stream") else {**call.body, "stream": True}
        timeouts = call.timeouts
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        budget = timeouts.head
        events: AsyncIterator[Any] | None = None
        try:
            async with asyncio.timeout(budget):
                reply = await self._send(call, body)
                self._raise_for_failure(reply)
                if reply.stream is None:
                    raise UpstreamProtocolError(f"{self.name}: expected an event stream, got a plain body")
                events = reply.stream
                first = await anext(events)
        except TimeoutError:
            await _close(events)
            raise UpstreamTimeout(f"{self.name}: no first event within {budget:g}s") from None
        except StopAsyncIteration:
            raise UpstreamProtocolError(f"{self.name}: stream ended before its first event") from None
        done = self._check_event(first, call.endpoint)
        rest = self._rest(events, done=done, deadline=deadline, idle=timeouts.idle, endpoint=call.endpoint)

        async def close() -> None:
            await _close(rest)
            await _close(events)

        return UpstreamStream(first, rest, close)

    async def check_health(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None

    async def _send(self, call: UpstreamCall, body: Mapping[str, Any]) -> SimResponse:
        if "model" not in body:
            body = {**body, "model": self.model}
        headers = self._headers
        if call.extra_headers:
            headers = {**headers, **{k.lower(): v for k, v in call.extra_headers.items()}}
        return await self.simulator.handle("POST", "/v1" + call.endpoint.path, headers, orjson.dumps(body))

    async def _rest(
        self, events: AsyncIterator[bytes], *, done: bool, deadline: float, idle: float, endpoint: Endpoint
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        while not done:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UpstreamTimeout(f"{self.name}: stream exceeded its total time budget")
            try:
                async with asyncio.timeout(min(idle, remaining)):
                    event = await anext(events)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"{self.name}: stream stalled (no event within the time budget)"
                ) from None
            except StopAsyncIteration:
                marker = "its last event" if endpoint in LAST_EVENTS else "[DONE]"
                raise UpstreamProtocolError(f"{self.name}: stream ended before {marker}") from None
            done = self._check_event(event, endpoint)
            yield event

    def _check_event(self, event: bytes, endpoint: Endpoint) -> bool:
        """Each event is a ``data: <json>`` line (Responses and Messages events an ``event:`` line first)
        and a blank line; anything else is broken. True for the stream's last event: ``[DONE]``, or the
        final typed event of a Responses or Messages stream."""
        if event == CUT_CONNECTION:
            raise UpstreamProtocolError(f"{self.name}: upstream dropped the connection mid-stream")
        if event == DONE_EVENT:
            return True
        parsed = iter_events(event)
        try:
            if len(parsed) != 1 or parsed[0].data is None:
                raise ValueError("not one data event")
            payload = orjson.loads(parsed[0].data)
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            raise UpstreamProtocolError(f"{self.name}: malformed stream event") from None
        last = LAST_EVENTS.get(endpoint)
        return last is not None and isinstance(payload, dict) and payload.get("type") in last

    def _raise_for_failure(self, reply: SimResponse) -> None:
        if reply.cut:
            raise UpstreamUnavailable(f"{self.name}: upstream closed the connection without answering")
        if reply.status < 400:
            return
        error = _error_fields(reply.body)
        message = f"{self.name}: upstream answered {reply.status}: {error.get('message') or 'error'}"
        status = reply.status
        if status == 429:
            raise UpstreamRateLimited(message, retry_after=retry_after_seconds(reply.headers))
        if status == 503:
            raise UpstreamUnavailable(message)
        if status in (408, 504):
            raise UpstreamTimeout(message)
        if status >= 500:
            raise UpstreamError(message)
        if status == 400 and context_length_exceeded(error):
            raise ContextLengthExceeded(message, param=error.get("param"))
        raise UpstreamStatusError(message, status=status, type_=error.get("type"), param=error.get("param"))


def _error_fields(body: bytes) -> dict[str, Any]:
    with contextlib.suppress(orjson.JSONDecodeError):
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and isinstance(error := parsed.get("error"), dict):
            return error
    return {}


async def _close(iterator: AsyncIterator[Any] | None) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    # Closing a generator another task is still iterating raises RuntimeError; that task's own
    # cancellation will finish it.
    with contextlib.suppress(RuntimeError):
        await aclose()
