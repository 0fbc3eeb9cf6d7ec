"""The simulator core: one request (method, path, headers, body) in, one ``SimResponse`` out.

No HTTP library here: ``server.py`` wraps it in aiohttp, ``providers.simulated`` calls it in-process.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import unquote

import orjson

from gateway.simulator.anthropic import AnthropicMessages
from gateway.simulator.config import KnobResolver, Knobs, SimConfig
from gateway.simulator.embeddings import embeddings_body
from gateway.simulator.faults import FaultSpecError
from gateway.simulator.gemini import GeminiGenerate
from gateway.simulator.generation import Answer
from gateway.simulator.ledger import Ledger
from gateway.simulator.openai_chat import OpenAIChat
from gateway.simulator.openai_completions import OpenAICompletions
from gateway.simulator.openai_responses import OpenAIResponses
from gateway.simulator.serving_slots import ServingSlots
from gateway.simulator.streaming import play
from gateway.simulator.variants import vary
from gateway.simulator.wire import (
    JSON_HEADERS,
    SSE_HEADERS,
    BadRequest,
    SimResponse,
    corrupt_body,
    json_response,
    openai_error,
)

_log = logging.getLogger(__name__)
_CREATED = int(time.time())
_STREAM_FAULTS = ("hang_after", "truncate_after", "reset_after", "malformed", "malformed_after", "slow_tps")
_GEMINI_PATH = re.compile(r"^(?:/v1beta|/v1)?/models/([^/:]+):(generateContent|streamGenerateContent)$")


class Dialect(Protocol):
    """One wire protocol for generation: parse its request, render the neutral answer back."""

    def error(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> bytes: ...
    def parse(self, body: dict[str, Any], model: str) -> Any: ...
    def answer(self, request: Any, output_tokens: int, seed: int) -> Answer: ...
    def render(self, answer: Answer, request: Any) -> bytes: ...
    def events(self, answer: Answer, request: Any) -> list[bytes]: ...


class Simulator:
    """A fake upstream speaking the OpenAI, Anthropic Messages and Gemini wire protocols."""

    def __init__(self, config: SimConfig | None = None, **settings: Any) -> None:
        self.config = config or SimConfig.from_kwargs(**settings)
        self.ledger = Ledger(self.config.seed)
        self.slots = ServingSlots(self.config.slots)
        self._knobs = KnobResolver(self.config)
        self._chat, self._completions = OpenAIChat(), OpenAICompletions()
        self._anthropic, self._gemini = AnthropicMessages(), GeminiGenerate()
        self._responses = OpenAIResponses()

    async def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> SimResponse:
        """Answer one request. ``headers`` must have lower-case names; ``path`` may carry a query."""
        try:
            return await self._route(method, path.partition("?")[0], headers, body)
        except Exception as exc:  # a simulator bug: answer like a failing upstream, and say so in the log
            _log.exception("simulator failed on %s %s", method, path)
            return SimResponse(
                500, dict(JSON_HEADERS), openai_error(500, f"simulator internal error: {exc!r}")
            )

    async def _route(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> SimResponse:
        route = path[3:] if path.startswith("/v1/") else path
        if method == "POST":
            if route == "/chat/completions":
                return await self._generate(self._chat, path, headers, body)
            if route == "/completions":
                return await self._generate(self._completions, path, headers, body)
            if route == "/messages":
                return await self._generate(self._anthropic, path, headers, body)
            if route == "/responses":
                return await self._generate(self._responses, path, headers, body)
            if route == "/embeddings":
                return await self._embeddings(path, headers, body)
            gemini = _GEMINI_PATH.match(path)
            if gemini:
                model, action = unquote(gemini[1]), gemini[2]
                return await self._generate(
                    self._gemini, path, headers, body, model, action.startswith("stream")
                )
            if path == "/sim/reset":
                self.ledger.reset()
                return json_response({"status": "reset"})
        elif method in ("GET", "HEAD"):
            if path in ("/health", "/healthz", "/"):
                return json_response({"status": "ok"})
            if path == "/sim/stats":
                return json_response(self.ledger.snapshot())
            if path == "/metrics":
                return SimResponse(200, {"content-type": "text/plain; version=0.0.4"}, self.slots.metrics_page())
            if path == "/slots":
                return SimResponse(200, dict(JSON_HEADERS), self.slots.slots_page())
            if path == "/props":
                return SimResponse(200, dict(JSON_HEADERS), self.slots.props_page())
            if route == "/models":
                self.ledger.record("", path)
                return json_response(
                    {"object": "list", "data": [_model_object(m) for m in self.config.models]}
                )
            if route.startswith("/models/"):
                return self._retrieve_model(unquote(route[len("/models/") :]))
        return SimResponse(
            404, dict(JSON_HEADERS), openai_error(404, f"Unknown request URL: {method} {path}")
        )

    async def _generate(
        self,
        dialect: Dialect,
        path: str,
        headers: Mapping[str, str],
        raw: bytes,
        model: str | None = None,
        stream: bool | None = None,
    ) -> SimResponse:
        try:
            body = _json_object(raw)
            model = model or body.get("model")
            if not isinstance(model, str) or not model:
                raise BadRequest("you must provide a model parameter", param="model")
            self.ledger.record(model, path, dict(headers), body)
            self._authenticate(headers)
            knobs = self._knobs_for(model, headers)
            failure = await self._injected_failure(model, knobs, dialect.error)
            if failure is not None:
                return failure
            request = dialect.parse(body, model)
        except BadRequest as exc:
            return SimResponse(
                exc.status, dict(JSON_HEADERS), dialect.error(exc.status, exc.message, exc.param, exc.code)
            )
        if stream is not None:
            request.stream = stream
        answer = vary(dialect.answer(request, knobs.output_tokens, self.config.seed), knobs.variant)
        if request.stream:
            self._record_stream_faults(knobs)
            events = dialect.events(answer, request)
            return SimResponse(
                200, dict(SSE_HEADERS), stream=self._in_slot(play(events, knobs, max_hang_s=self.config.max_hang_s))
            )
        async with self.slots.hold():
            return await self._finish(dialect.render(answer, request), knobs, answer.completion_tokens)

    async def _in_slot(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """A stream that waits for a free serving slot before its first event and holds it to its last."""
        async with self.slots.hold():
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()  # type: ignore[attr-defined]

    async def _embeddings(self, path: str, headers: Mapping[str, str], raw: bytes) -> SimResponse:
        try:
            body = _json_object(raw)
            model = body.get("model")
            if not isinstance(model, str) or not model:
                raise BadRequest("you must provide a model parameter", param="model")
            self.ledger.record(model, path, dict(headers), body)
            self._authenticate(headers)
            knobs = self._knobs_for(model, headers)
            failure = await self._injected_failure(model, knobs, openai_error)
            if failure is not None:
                return failure
            payload = embeddings_body(body, model, self.config.embedding_dim)
        except BadRequest as exc:
            return SimResponse(
                exc.status, dict(JSON_HEADERS), openai_error(exc.status, exc.message, exc.param)
            )
        return await self._finish(payload, knobs, 0)

    async def _finish(self, payload: bytes, knobs: Knobs, tokens: int) -> SimResponse:
        delay = knobs.generation_seconds(tokens)
        if delay > 0:
            await asyncio.sleep(delay)
        if knobs.fault.malformed:
            self.ledger.record_fault("malformed")
            payload = corrupt_body(payload)
        return SimResponse(200, dict(JSON_HEADERS), payload)

    async def _injected_failure(
        self, model: str, knobs: Knobs, render_error: Callable[[int, str], bytes]
    ) -> SimResponse | None:
        """The response a fault replaces the answer with (hang, reset, error status), if any."""
        fault = knobs.fault
        if fault.hang:
            self.ledger.record_fault("hang")
            await asyncio.sleep(self.config.max_hang_s)
            return SimResponse(0, cut=True)
        if fault.reset:
            self.ledger.record_fault("reset")
            return SimResponse(0, cut=True)
        if fault.fail_first is not None:
            fires = self.ledger.fail_first_fires(model, fault.fail_first)
        elif fault.flaky is not None:
            fires = self.ledger.flaky_fires(model, fault.flaky)
        else:
            fires = fault.status is not None
        if not fires:
            return None
        status = fault.fail_status
        self.ledger.record_fault(f"status_{status}")
        headers = dict(JSON_HEADERS)
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        message = fault.message or f"Simulated upstream failure ({fault.describe()})"
        return SimResponse(status, headers, render_error(status, message))

    def _record_stream_faults(self, knobs: Knobs) -> None:
        fault = knobs.fault
        for name in _STREAM_FAULTS:
            if getattr(fault, name) not in (None, False):
                self.ledger.record_fault(name)

    def _knobs_for(self, model: str, headers: Mapping[str, str]) -> Knobs:
        try:
            return self._knobs.for_request(model, headers)
        except (FaultSpecError, ValueError) as exc:
            raise BadRequest(str(exc), param="x-sim-fault") from None

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        expected = self.config.api_key
        if expected is None:
            return
        offered = {
            headers.get("authorization", "").removeprefix("Bearer ").strip(),
            headers.get("x-api-key", ""),
            headers.get("x-goog-api-key", ""),
        }
        if expected not in offered:
            raise BadRequest("Incorrect API key provided", status=401)

    def _retrieve_model(self, model_id: str) -> SimResponse:
        if model_id not in self.config.models:
            message = f"The model '{model_id}' does not exist"
            return SimResponse(404, dict(JSON_HEADERS), openai_error(404, message, "model"))
        return json_response(_model_object(model_id))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "simulator"}
