"""Provider for upstreams that do not speak OpenAI's protocol (Anthropic, Gemini, Bedrock…), via litellm.

litellm translates an OpenAI-shaped call into the vendor's wire protocol and back. This adapter
keeps it on a short leash, because the rest of the gateway already does what litellm's extras do:

- **What reaches litellm**: only OpenAI chat parameters from an allow-list (``litellm_wire``),
  then the deployment's ``params``, then the adapter's own settings (model, base URL, key,
  timeout, no retries). litellm's retries are off: the executor retries, per attempt and target.
- **What comes back**: every answer is rebuilt as OpenAI's schema (``litellm_wire``), not dumped
  as litellm made it; failures become ``UpstreamError`` subclasses by class (``litellm_errors``).
- **Time**: non-streamed calls get ``min(first_byte, total)`` (the answer's head only arrives when it
  is done); streams get ``first_byte`` for the first event, ``idle`` between events and ``total``
  overall. Each budget is the tighter of the call's and the deployment's. Connect time is not
  bounded separately: litellm hands the Anthropic and Gemini clients a single number.
- **Cancellation**: a stream's ``aclose`` closes litellm's stream, which closes the HTTP response,
  so a client that disconnects stops the vendor's generation.

Model strings: type ``anthropic`` → ``anthropic/<model>`` (``api_base`` is the host root, litellm
appends ``/v1/messages``; a trailing ``/v1`` is removed), ``gemini`` → ``gemini/<model>``
(``api_base`` includes the version, e.g. ``…/v1beta``; litellm appends
``/models/<model>:generateContent``), ``litellm`` → ``model`` as written (``bedrock/…``).
No ``api_base`` means the vendor's public endpoint; no ``api_key`` means litellm's environment
variable for that vendor (``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY``…).

Legacy ``/completions`` is refused with a 400 rather than emulated: every vendor behind this adapter
is chat-only, and emulating prompts over chat would answer something the caller did not ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

import orjson

from gateway.core.errors import (
    GatewayError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from gateway.core.types import Endpoint, Usage
from gateway.policy.models import Deployment
from gateway.providers import litellm_wire as wire
from gateway.providers.anthropic_messages import AnthropicMessagesPassthrough
from gateway.providers.base import Timeouts, UpstreamCall, UpstreamReply, UpstreamStream
from gateway.providers.egress import EgressSettings
from gateway.providers.litellm_egress import litellm_client
from gateway.providers.litellm_errors import translate
from gateway.providers.litellm_runtime import litellm
from gateway.providers.registry import ProviderContext
from gateway.providers.upstream_errors import deployment_secrets

DONE = b"data: [DONE]\n\n"

_MODEL_PREFIXES: dict[str, str] = {"anthropic": "anthropic/", "gemini": "gemini/", "litellm": ""}


def litellm_model(provider_type: str, model: str) -> str:
    """The litellm model string for a deployment's ``type`` and upstream model id."""
    try:
        prefix = _MODEL_PREFIXES[provider_type]
    except KeyError:
        raise ValueError(f"provider type {provider_type!r} is not served by litellm") from None
    return model if model.startswith(prefix) else prefix + model


def normalize_api_base(provider_type: str, api_base: str | None) -> str | None:
    """The base URL litellm expects: Anthropic's without ``/v1`` (litellm adds ``/v1/messages``)."""
    if not api_base:
        return None
    base = api_base.rstrip("/")
    if provider_type == "anthropic" and base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base


def _event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class LiteLLMProvider:
    """One non-OpenAI deployment, called through ``litellm.acompletion`` / ``aembedding``."""

    def __init__(self, deployment: Deployment, context: ProviderContext | None = None) -> None:
        self.name: str = deployment.name
        self.model: str = litellm_model(deployment.type, deployment.model)
        self._upstream_model: str = deployment.model
        self._api_base = normalize_api_base(deployment.type, deployment.api_base)
        self._api_key: str | None = deployment.api_key
        self._headers: dict[str, str] = dict(deployment.headers or {})
        self._timeouts = deployment.timeouts
        self._params: dict[str, Any] = dict(deployment.params or {})
        # Everything that must never appear in an error message: the key, and header values such
        # as a bearer token configured on the deployment (the same rule as the passthrough path).
        self._secrets: tuple[str, ...] = deployment_secrets(deployment)
        # Proxy, CA and client certificate as the passthrough path applies them (litellm_egress).
        self._client = litellm_client(
            deployment.type, self._api_base, EgressSettings.from_policy(deployment.egress)
        )
        # A client speaking Anthropic's Messages API reaches an Anthropic deployment untouched.
        self._messages = (AnthropicMessagesPassthrough(deployment, context or ProviderContext())
                          if deployment.type == "anthropic" else None)

    def __repr__(self) -> str:  # no key in reprs either
        return f"LiteLLMProvider(name={self.name!r}, model={self.model!r}, api_base={self._api_base!r})"

    # -- requests ---------------------------------------------------------------------------

    def _kwargs(self, call: UpstreamCall, allowed: frozenset[str], timeout: float) -> dict[str, Any]:
        kwargs = wire.forwarded_params(call.body, allowed)
        kwargs["drop_params"] = True  # OpenAI parameters the vendor lacks are dropped, not fatal
        kwargs.update(self._params)
        kwargs.update(model=self.model, timeout=timeout, num_retries=0, max_retries=0)
        if self._api_base:
            kwargs["api_base"] = self._api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        if self._client is not None:
            kwargs["client"] = self._client
        headers = {**self._headers, **call.extra_headers}
        if headers:
            kwargs["extra_headers"] = headers
        return kwargs

    def _error(self, exc: Exception) -> GatewayError:
        return translate(exc, deployment=self.name, secrets=self._secrets)

    def _timeout(self, what: str, seconds: float) -> UpstreamTimeout:
        return UpstreamTimeout(f"deployment {self.name!r}: {what} within {seconds:g}s")

    # -- Provider protocol ------------------------------------------------------------------

    async def complete(self, call: UpstreamCall) -> UpstreamReply:
        if call.endpoint is Endpoint.MESSAGES and self._messages is not None:
            return await self._messages.complete(call)
        if call.endpoint is Endpoint.EMBEDDINGS:
            return await self._embed(call)
        self._require_chat(call)
        timeouts = call.timeouts.tighter(self._timeouts)
        budget = timeouts.head
        kwargs = self._kwargs(call, wire.CHAT_PARAMS, budget)
        kwargs["stream"] = False
        response = await self._within(budget, litellm.acompletion(**kwargs))
        shaped = wire.chat_completion(response.model_dump(), self._upstream_model)
        return UpstreamReply(body=orjson.dumps(shaped), usage=wire.usage_of(shaped), parsed=shaped)

    async def open_stream(self, call: UpstreamCall) -> UpstreamStream:
        if call.endpoint is Endpoint.MESSAGES and self._messages is not None:
            return await self._messages.open_stream(call)
        self._require_chat(call)
        timeouts = call.timeouts.tighter(self._timeouts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        wait_first = timeouts.head
        # litellm's own (per-read) timeout is only a backstop; the budgets are enforced here.
        kwargs = self._kwargs(call, wire.CHAT_PARAMS, max(timeouts.first_byte, timeouts.idle))
        kwargs.update(stream=True, stream_options={"include_usage": True})
        shaper = wire.ChunkShaper(self._upstream_model)
        upstream: Any = None
        try:
            async with asyncio.timeout(wait_first):
                upstream = await litellm.acompletion(**kwargs)
                first = await self._next_event(upstream, shaper)
            if first is None:
                raise UpstreamProtocolError(f"deployment {self.name!r}: stream ended before its first event")
        except BaseException as exc:
            if upstream is not None:
                await upstream.aclose()
            if not isinstance(exc, Exception) or isinstance(exc, GatewayError):
                raise  # cancelled (the caller is gone) or already ours: nothing to translate
            if isinstance(exc, TimeoutError):
                raise self._timeout("no first stream event", wait_first) from exc
            raise self._error(exc) from exc
        rest = self._rest(upstream, shaper, deadline, timeouts)

        async def close() -> None:
            try:
                await rest.aclose()
            except RuntimeError:
                pass  # being iterated by another task right now; closing upstream below ends that too
            await upstream.aclose()

        return UpstreamStream(first, rest, close)

    async def check_health(self) -> bool:
        """Always healthy: vendors are not probed actively (a probe would be a billed call)."""
        return True

    async def aclose(self) -> None:
        """litellm's own HTTP clients are process-wide; a deployment's egress client and its Messages
        passthrough are ours."""
        if self._client is not None:
            await self._client.close()
        if self._messages is not None:
            await self._messages.aclose()

    # -- internals --------------------------------------------------------------------------

    def _require_chat(self, call: UpstreamCall) -> None:
        if call.endpoint is not Endpoint.CHAT:
            raise UpstreamStatusError(
                f"the {call.endpoint.path} endpoint is not supported by deployment {self.name!r}",
                status=400,
                type_="invalid_request_error",
                code="unsupported_endpoint",
            )

    @staticmethod
    async def _next_event(upstream: Any, shaper: wire.ChunkShaper) -> bytes | None:
        """The next non-empty OpenAI SSE event, or ``None`` at the end of the stream."""
        async for chunk in upstream:
            shaped = shaper.shape(chunk.model_dump())
            if shaped is not None:
                return _event(shaped)
        return None

    async def _rest(
        self, upstream: Any, shaper: wire.ChunkShaper, deadline: float, timeouts: Timeouts
    ) -> AsyncGenerator[bytes, None]:
        """Events after the first: ``idle`` bounds each gap, ``deadline`` the whole stream."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise self._timeout("stream not finished", timeouts.total)
                wait = min(timeouts.idle, remaining)
                try:
                    async with asyncio.timeout(wait):
                        event = await self._next_event(upstream, shaper)
                except TimeoutError as exc:
                    if wait < timeouts.idle:
                        raise self._timeout("stream not finished", timeouts.total) from exc
                    raise self._timeout("no stream event", wait) from exc
                except GatewayError:
                    raise
                except Exception as exc:
                    raise self._error(exc) from exc
                if event is None:
                    break
                yield event
            if not shaper.finished:
                # Some litellm stream parsers end quietly when the body stops early (Anthropic's
                # raises instead); a client must not mistake a cut-off answer for a complete one.
                raise UpstreamProtocolError(
                    f"deployment {self.name!r}: stream ended before the answer finished"
                )
            yield DONE
        finally:
            await upstream.aclose()

    async def _within(self, budget: float, work: Awaitable[Any]) -> Any:
        """A non-streamed litellm call under its time budget, its failures translated."""
        try:
            async with asyncio.timeout(budget):
                return await work
        except TimeoutError as exc:
            raise self._timeout("no answer", budget) from exc
        except Exception as exc:
            raise self._error(exc) from exc

    async def _embed(self, call: UpstreamCall) -> UpstreamReply:
        timeouts = call.timeouts.tighter(self._timeouts)
        budget = timeouts.head
        kwargs = self._kwargs(call, wire.EMBEDDING_PARAMS, budget)
        response = await self._within(budget, litellm.aembedding(**kwargs))
        encoding = call.body.get("encoding_format")
        shaped = wire.embeddings(response.model_dump(), self._upstream_model, encoding)
        usage = Usage(prompt_tokens=shaped["usage"]["prompt_tokens"])
        return UpstreamReply(body=orjson.dumps(shaped), usage=usage, parsed=shaped)
