"""Passthrough to OpenAI-compatible servers: vLLM, SGLang, Ollama, llama.cpp, OpenAI, DeepSeek, Moonshot, ...

Bodies go out as the client sent them (model replaced, unknown fields kept) and come back byte for byte:
a non-streamed answer is parsed once only to read its usage; stream events are split on their blank-line
boundaries and passed on without being decoded. Connections are pooled and kept alive per deployment.
aiohttp errors are translated to ``core.errors`` here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from gateway.core.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.core.types import Usage
from gateway.providers.base import Timeouts, UpstreamCall, UpstreamReply, UpstreamStream
from gateway.providers.registry import DEFAULT_API_BASES, ProviderContext
from gateway.providers.upstream_errors import error_for_status


class OpenAICompatProvider:
    def __init__(self, deployment: Any, context: ProviderContext) -> None:
        self.name: str = deployment.name
        base = deployment.api_base or DEFAULT_API_BASES.get(deployment.type)
        if not base:
            raise ValueError(f"deployment {deployment.name!r}: api_base is required for type {deployment.type!r}")
        self._base = base.rstrip("/")
        self._secret = deployment.api_key or ""
        headers = {"content-type": "application/json", **deployment.headers}
        if deployment.api_key:
            headers["authorization"] = f"Bearer {deployment.api_key}"
        self._headers = headers
        self._limit = deployment.max_concurrency or 0
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=0, keepalive_timeout=60, ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, skip_auto_headers=("User-Agent",),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def _post(self, call: UpstreamCall) -> aiohttp.ClientResponse:
        t: Timeouts = call.timeouts
        url = self._base + call.endpoint.path
        timeout = aiohttp.ClientTimeout(total=t.total, sock_connect=t.connect, connect=t.connect)
        try:
            async with asyncio.timeout(t.first_byte):
                resp = await self._client().post(
                    url, data=orjson.dumps(call.body), headers=call.extra_headers or None, timeout=timeout
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(f"deployment {self.name!r} did not answer within {t.first_byte:g}s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamUnavailable(f"cannot connect to deployment {self.name!r}") from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            raise UpstreamUnavailable(f"deployment {self.name!r} closed the connection") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"deployment {self.name!r}: {type(exc).__name__}") from exc
        if resp.status >= 400:
            try:
                body = await resp.read()
            except (aiohttp.ClientError, TimeoutError):
                body = b""
            finally:
                resp.release()
            raise error_for_status(self.name, resp.status, body, resp.headers, self._secret)
        return resp

    async def complete(self, call: UpstreamCall) -> UpstreamReply:
        resp = await self._post(call)
        try:
            body = await resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"deployment {self.name!r} exceeded {call.timeouts.total:g}s") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamProtocolError(f"deployment {self.name!r} broke off its answer") from exc
        finally:
            resp.release()
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError(f"deployment {self.name!r} returned a body that is not JSON") from exc
        if not isinstance(parsed, dict):
            raise UpstreamProtocolError(f"deployment {self.name!r} returned JSON that is not an object")
        return UpstreamReply(body=body, usage=Usage.from_openai(parsed.get("usage")), parsed=parsed)

    async def open_stream(self, call: UpstreamCall) -> UpstreamStream:
        resp = await self._post(call)
        events = _sse_events(resp, call.timeouts, self.name)
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
            resp.close()

        return UpstreamStream(first, events, close)

    async def check_health(self) -> bool:
        try:
            async with self._client().get(self._base + "/models", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                return resp.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


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


async def _sse_events(resp: aiohttp.ClientResponse, t: Timeouts, name: str) -> AsyncGenerator[bytes, None]:
    """Yield the upstream's bytes as they arrive, cut at event boundaries: each item holds one or more
    complete SSE events, exactly as sent. Passing on a read's worth at once (rather than one event at a
    time) saves a write per event when the upstream is faster than the client connection."""
    content = resp.content
    buffer = b""
    done = False
    try:
        while not done:
            try:
                async with asyncio.timeout(t.idle):
                    chunk = await content.readany()
            except TimeoutError as exc:
                raise UpstreamTimeout(f"deployment {name!r} stalled for {t.idle:g}s mid-stream") from exc
            except aiohttp.ClientError as exc:
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
        resp.release() if done else resp.close()
