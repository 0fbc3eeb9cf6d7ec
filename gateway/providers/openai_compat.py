"""Passthrough to OpenAI-compatible servers: vLLM, SGLang, Ollama, llama.cpp, OpenAI, DeepSeek, Moonshot, ...

Bodies go out as the client sent them (model replaced, unknown fields kept) and come back byte for byte:
a non-streamed answer is parsed once only to read its usage; stream events are cut at their blank-line
boundaries and passed on without being re-encoded. Connections are pooled and kept alive per deployment
(``http1.Pool``); its errors are translated to ``core.errors`` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from gateway.core.errors import (
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.core.types import Usage
from gateway.providers.base import Timeouts, UpstreamCall, UpstreamReply, UpstreamStream
from gateway.providers.http1 import ConnectionClosed, MalformedResponse, Pool, Response
from gateway.providers.registry import DEFAULT_API_BASES, ProviderContext
from gateway.providers.upstream_errors import error_for_status


class OpenAICompatProvider:
    def __init__(self, deployment: Any, context: ProviderContext) -> None:
        self.name: str = deployment.name
        base = deployment.api_base or DEFAULT_API_BASES.get(deployment.type)
        if not base:
            raise ValueError(f"deployment {deployment.name!r}: api_base is required for type {deployment.type!r}")
        self._secret = deployment.api_key or ""
        headers = {"content-type": "application/json", **deployment.headers}
        if deployment.api_key:
            headers["authorization"] = f"Bearer {deployment.api_key}"
        self._pool = Pool(base.rstrip("/"), headers)

    async def _post(self, call: UpstreamCall) -> Response:
        t: Timeouts = call.timeouts
        try:
            async with asyncio.timeout(t.first_byte):
                resp = await self._pool.request(
                    "POST", call.endpoint.path, orjson.dumps(call.body), extra_headers=call.extra_headers or None,
                    connect_timeout=t.connect,
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"deployment {self.name!r} did not answer within {t.first_byte:g}s") from exc
        except ConnectionClosed as exc:
            raise UpstreamUnavailable(f"deployment {self.name!r} closed the connection") from exc
        except MalformedResponse as exc:
            raise UpstreamProtocolError(f"deployment {self.name!r} sent a malformed HTTP response") from exc
        except OSError as exc:
            raise UpstreamUnavailable(f"cannot connect to deployment {self.name!r}") from exc
        if resp.status >= 400:
            try:
                async with asyncio.timeout(t.idle):
                    body = await resp.read()
            except (ConnectionClosed, MalformedResponse, TimeoutError):
                body = b""
            finally:
                resp.release()
            raise error_for_status(self.name, resp.status, body, resp.headers, self._secret)
        return resp

    async def complete(self, call: UpstreamCall) -> UpstreamReply:
        started = time.monotonic()
        resp = await self._post(call)
        try:
            async with asyncio.timeout(max(0.001, call.timeouts.total - (time.monotonic() - started))):
                body = await resp.read()
        except TimeoutError as exc:
            resp.close()
            raise UpstreamTimeout(f"deployment {self.name!r} exceeded {call.timeouts.total:g}s") from exc
        except (ConnectionClosed, MalformedResponse) as exc:
            resp.close()
            raise UpstreamProtocolError(f"deployment {self.name!r} broke off its answer") from exc
        except BaseException:
            resp.close()
            raise
        resp.release()
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
        events = _sse_events(resp, call.timeouts, self.name, started + call.timeouts.total)
        try:
            async with asyncio.timeout(call.timeouts.first_byte):
                first = await anext(events)
        except StopAsyncIteration:
            resp.close()
            raise UpstreamProtocolError(f"deployment {self.name!r} sent an empty stream") from None
        except TimeoutError as exc:
            resp.close()
            raise UpstreamTimeout(f"deployment {self.name!r} sent no first token within {call.timeouts.first_byte:g}s") from exc
        except BaseException:
            resp.close()
            raise
        if first.startswith(b"{"):
            # A server that ignored stream=true and answered with plain JSON.
            resp.close()
            raise UpstreamProtocolError(f"deployment {self.name!r} answered a stream request without SSE")

        async def close() -> None:
            await events.aclose()
            resp.close()  # no-op when the stream ended and the connection went back to the pool

        return UpstreamStream(first, events, close)

    async def check_health(self) -> bool:
        try:
            async with asyncio.timeout(2):
                resp = await self._pool.request("GET", "/models", connect_timeout=2)
                await resp.read()
            resp.release()
            return resp.status < 500
        except (OSError, TimeoutError, MalformedResponse):
            return False

    async def aclose(self) -> None:
        await self._pool.aclose()


def _last_boundary(buffer: bytes) -> int:
    """End of the last complete event in ``buffer`` (0 when there is none yet)."""
    lf = buffer.rfind(b"\n\n")
    crlf = buffer.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _inspect(batch: bytes, name: str) -> bool:
    """Parse (never re-encode) each data event's JSON; True when the batch ends the stream.

    A malformed event ends the stream with a clear error instead of reaching the client's SDK as
    garbage; before the first byte reached the client it triggers a fallback.
    """
    done = False
    text = batch.replace(b"\r\n", b"\n") if b"\r" in batch else batch
    for event in text.split(b"\n\n"):
        if not event.startswith(b"data:"):
            continue  # blank, comment or `event:` lines
        payload = event[5:].strip()
        if payload == b"[DONE]":
            done = True
            continue
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamProtocolError(f"deployment {name!r} sent a malformed stream event") from None
    return done


async def _sse_events(resp: Response, t: Timeouts, name: str, deadline: float) -> AsyncGenerator[bytes, None]:
    """Yield the upstream's bytes as they arrive, cut at event boundaries: each item holds one or more
    complete SSE events, exactly as sent. Passing on a read's worth at once (rather than one event at a
    time) saves a write per event when the upstream is faster than the client connection."""
    buffer = b""
    done = False
    try:
        while not done:
            left = deadline - time.monotonic()
            try:
                async with asyncio.timeout(min(t.idle, max(0.001, left))):
                    chunk = await resp.readany()
            except TimeoutError as exc:
                if left <= t.idle:
                    raise UpstreamTimeout(f"deployment {name!r} exceeded {t.total:g}s") from exc
                raise UpstreamTimeout(f"deployment {name!r} stalled for {t.idle:g}s mid-stream") from exc
            except (ConnectionClosed, MalformedResponse) as exc:
                raise UpstreamProtocolError(f"deployment {name!r} broke off the stream") from exc
            if not chunk:
                break
            buffer += chunk
            end = _last_boundary(buffer)
            if not end:
                continue
            batch, buffer = buffer[:end], buffer[end:]
            done = _inspect(batch, name)
            yield batch
        if not done:
            if buffer.strip().startswith(b"{"):
                raise UpstreamProtocolError(f"deployment {name!r} answered a stream request without SSE")
            raise UpstreamProtocolError(f"deployment {name!r} ended the stream before [DONE]")
    finally:
        if done:
            resp.release_when_complete()  # the terminating chunk may still be on its way
        else:
            resp.close()
