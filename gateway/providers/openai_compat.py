"""Passthrough to OpenAI-compatible servers: vLLM, SGLang, Ollama, llama.cpp, OpenAI, DeepSeek, Moonshot, ...

Bodies go out as the client sent them (model replaced, unknown fields kept; the deployment's ``params``
fill in fields the client did not send) and come back byte for byte: a non-streamed answer is parsed
once only to read its usage; a stream goes through the one SSE decoder (``core.sse``), which cuts it at
event boundaries (LF, CRLF or CR) in linear time and bounds each event, and each upstream read's
complete events are passed on as one item, exactly as they arrived. Every data event's JSON is checked
(never re-encoded) so a malformed event ends the stream with a clear error, and ``[DONE]`` ends it.

The HTTP work is ``transport.Transport`` (one per deployment: pooled connections, proxy, TLS, caps);
answers larger than the deployment's ``max_response_bytes`` end in a 502 without being buffered whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from gateway.core.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout
from gateway.core.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecodeError, SSEDecoder, SSEEvent
from gateway.core.types import Endpoint, Usage
from gateway.policy.models import Deployment
from gateway.providers.base import LAST_EVENTS, Timeouts, UpstreamCall, UpstreamReply, UpstreamStream
from gateway.providers.egress import EgressSettings
from gateway.providers.registry import DEFAULT_API_BASES, ProviderContext
from gateway.providers.transport import AnswerTooLarge, Transport, TransportSettings, UpstreamResponse
from gateway.providers.upstream_errors import deployment_secrets, error_for_status

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_ERROR_BODY_CAP = 64 * 1024  # an error answer is only read for its message
_DRAIN_SECONDS = 0.25  # after [DONE], how long to wait for the body's end so the connection can be pooled


class OpenAICompatProvider:
    def __init__(self, deployment: Deployment, context: ProviderContext) -> None:
        self.name: str = deployment.name
        base = deployment.api_base or DEFAULT_API_BASES.get(deployment.type)
        if not base:
            raise ValueError(f"deployment {deployment.name!r}: api_base is required for type {deployment.type!r}")
        self._secrets = deployment_secrets(deployment)
        headers = {"content-type": "application/json", **self.auth_headers(deployment), **deployment.headers}
        self._params: dict[str, Any] = dict(deployment.params)
        self._cap: int = deployment.max_response_bytes
        self._event_cap = min(self._cap, DEFAULT_MAX_EVENT_BYTES)
        settings = TransportSettings(
            connect_timeout=deployment.timeouts.connect,
            max_connections=deployment.connections.max_connections,
            idle_seconds=deployment.connections.idle_seconds,
        )
        self._transport = Transport(
            base, headers=headers, egress=EgressSettings.from_policy(deployment.egress),
            settings=settings, name=self.name, secrets=self._secrets,
        )

    @staticmethod
    def auth_headers(deployment: Deployment) -> dict[str, str]:
        """How the upstream is sent the deployment's key: OpenAI's bearer token."""
        return {"authorization": f"Bearer {deployment.api_key}"} if deployment.api_key else {}

    def _body(self, call: UpstreamCall) -> bytes:
        # The deployment's params are defaults: a field the client sent itself wins.
        return orjson.dumps({**self._params, **call.body} if self._params else call.body)

    async def _post(self, call: UpstreamCall) -> UpstreamResponse:
        t: Timeouts = call.timeouts
        resp = await self._transport.send(
            "POST", call.endpoint.path, self._body(call), headers=call.extra_headers or None,
            head_timeout=t.first_byte,
        )
        if resp.status >= 400:
            try:
                async with asyncio.timeout(t.idle):
                    body = await resp.read_all(_ERROR_BODY_CAP)
            except (UpstreamError, TimeoutError):
                body = b""
            finally:
                await resp.aclose()
            raise error_for_status(self.name, resp.status, body, resp.headers, self._secrets)
        return resp

    async def complete(self, call: UpstreamCall) -> UpstreamReply:
        started = time.monotonic()
        resp = await self._post(call)
        try:
            body = resp.read_buffered(self._cap)  # a small answer is usually complete with its head
            if not resp.at_end:
                async with asyncio.timeout(max(0.001, call.timeouts.total - (time.monotonic() - started))):
                    body += await resp.read_all(self._cap)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"deployment {self.name!r} exceeded {call.timeouts.total:g}s") from exc
        finally:
            await resp.aclose()  # pooled after a complete body, dropped otherwise
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(f"deployment {self.name!r} returned a body that is not JSON") from exc
        if not isinstance(parsed, dict):
            raise UpstreamProtocolError(f"deployment {self.name!r} returned JSON that is not an object")
        return UpstreamReply(body=body, usage=Usage.from_openai(parsed.get("usage")), parsed=parsed)

    async def open_stream(self, call: UpstreamCall) -> UpstreamStream:
        started = time.monotonic()
        resp = await self._post(call)
        events = self._events(resp, call.timeouts, started + call.timeouts.total, call.endpoint)
        try:
            async with asyncio.timeout(call.timeouts.first_byte):
                first = await anext(events)
        except StopAsyncIteration:
            await resp.aclose()
            raise UpstreamProtocolError(f"deployment {self.name!r} sent an empty stream") from None
        except TimeoutError as exc:
            await events.aclose()
            await resp.aclose()
            raise UpstreamTimeout(
                f"deployment {self.name!r} sent no first token within {call.timeouts.first_byte:g}s"
            ) from exc
        except BaseException:
            await events.aclose()
            await resp.aclose()
            raise

        async def close() -> None:
            await events.aclose()
            await resp.aclose()  # drops the connection unless the stream was read to its end

        return UpstreamStream(first, events, close)

    async def check_health(self) -> bool:
        try:
            resp = await self._transport.send("GET", "/models", head_timeout=2)
            try:
                async with asyncio.timeout(2):
                    await resp.read_all(_ERROR_BODY_CAP * 16)
            finally:
                await resp.aclose()  # a stalled body is dropped with its connection, never left open
            return resp.status < 500
        except (UpstreamError, TimeoutError):
            return False

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _inspect(self, events: list[SSEEvent], endpoint: Endpoint) -> bool:
        """Parse (never re-encode) each data event's JSON; True when the batch ends the stream.

        A malformed event ends the stream with a clear error instead of reaching the client's SDK as
        garbage; before the first byte reached the client it triggers a fallback. Chat and completions
        streams end with ``data: [DONE]``; Responses and Messages streams with their last typed event
        (``LAST_EVENTS``).
        """
        last = LAST_EVENTS.get(endpoint)
        for event in events:
            raw = event.raw
            if raw.startswith(b"data: ") and raw.find(b"\n") == len(raw) - 2:
                data: bytes | None = raw[6:-2]  # the common shape, one `data:` line: no line splitting
            else:
                data = event.data
            if data is None:
                continue  # comments and keep-alives
            if data == b"[DONE]":
                return True
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise UpstreamProtocolError(f"deployment {self.name!r} sent a malformed stream event") from None
            if last is not None and isinstance(payload, dict) and payload.get("type") in last:
                return True
        return False

    async def _read(self, resp: UpstreamResponse, t: Timeouts, deadline: float) -> bytes:
        if chunk := resp.read_buffered(self._cap):
            return chunk  # already here: no timer to arm
        if resp.at_end:
            return b""
        left = deadline - time.monotonic()
        try:
            async with asyncio.timeout(min(t.idle, max(0.001, left))):
                return await resp.read_chunk(self._cap)
        except TimeoutError as exc:
            if left <= t.idle:
                raise UpstreamTimeout(f"deployment {self.name!r} exceeded {t.total:g}s") from exc
            raise UpstreamTimeout(f"deployment {self.name!r} stalled for {t.idle:g}s mid-stream") from exc

    async def _events(self, resp: UpstreamResponse, t: Timeouts, deadline: float,
                      endpoint: Endpoint) -> AsyncGenerator[bytes, None]:
        """Yield each read's complete events as one item, exactly as sent. Passing on a read's worth at
        once (rather than one event at a time) saves a write per event when the upstream is faster
        than the client connection."""
        decoder = SSEDecoder(self._event_cap)
        done = ended = False
        while not done and not ended:
            chunk = await self._read(resp, t, deadline)
            ended = not chunk
            try:
                events = decoder.finish() if ended else decoder.feed(chunk)
            except SSEDecodeError as exc:
                raise AnswerTooLarge(
                    f"deployment {self.name!r} sent a stream event over {self._event_cap} bytes",
                    "a stream event", self._event_cap,
                ) from exc
            if events:
                done = self._inspect(events, endpoint)
                yield events[0].raw if len(events) == 1 else b"".join(e.raw for e in events)
        if not done:
            if decoder.pending.lstrip().startswith(b"{"):
                raise UpstreamProtocolError(f"deployment {self.name!r} answered a stream request without SSE")
            marker = "its last event" if endpoint in LAST_EVENTS else "[DONE]"
            raise UpstreamProtocolError(f"deployment {self.name!r} ended the stream before {marker}")
        # The body's end (a chunked terminator) usually follows [DONE] at once: read it so the
        # connection goes back to the pool instead of being dropped.
        if resp.at_end:
            return
        try:
            async with asyncio.timeout(_DRAIN_SECONDS):
                while await resp.read_chunk(self._cap):
                    pass
        except (TimeoutError, UpstreamError):
            pass
