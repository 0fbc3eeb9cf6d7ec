"""The protocols clients speak to the gateway, each as a *dialect* of the one pipeline.

A dialect parses and validates what its clients send, says what each target is sent (the client's body
on the client's API when the target serves it natively, else a translation to chat completions), and
renders answers and errors back in the client's protocol. Routing, limits, budgets, cache, accounting
and the access log are the pipeline's and the same for every dialect.

    OpenAIDialect      /v1/chat/completions, /v1/completions, /v1/embeddings   passed through
    MessagesDialect    /v1/messages  (Anthropic)   native to `messages` deployments, else via chat
    ResponsesDialect   /v1/responses (OpenAI)      native to `responses` deployments, else via chat

The cache only ever holds chat-shaped answers (an OpenAI dialect's own, or the chat answer a translated
request got), keyed by the client's protocol, so an entry is replayed only to the protocol it can be
rendered in; native Messages and Responses answers are passed on, not cached.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.core.errors import GatewayError, UpstreamProtocolError
from gateway.core.types import Endpoint
from gateway.pipeline.call import Call
from gateway.pipeline.responses import sse_error
from gateway.pipeline.stream_relay import Renderer
from gateway.policy.models import Deployment
from gateway.protocols.anthropic_errors import anthropic_error_body, anthropic_error_event
from gateway.protocols.anthropic_messages_request import messages_to_chat
from gateway.protocols.anthropic_messages_response import chat_to_message
from gateway.protocols.anthropic_messages_stream import MessagesStream
from gateway.protocols.anthropic_messages_validation import validate_messages
from gateway.protocols.json_body import parse_json_object
from gateway.protocols.openai import validate
from gateway.protocols.openai_responses_request import responses_to_chat
from gateway.protocols.openai_responses_response import ResponsesContext, chat_to_response
from gateway.protocols.openai_responses_stream import ResponsesStream
from gateway.protocols.openai_responses_validation import validate_responses
from gateway.protocols.translation import ChatTarget, Translation
from gateway.routing.executor import RequestFor, UpstreamRequest, body_for
from gateway.routing.tokens import estimate_request_tokens

_TAKES_TOP_K = frozenset({"vllm", "sglang", "llamacpp", "ollama", "simulator"})
_ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta")


@dataclass(slots=True)
class Inbound:
    """A parsed, validated request: as the client sent it, and (for translating dialects) as chat."""

    body: dict[str, Any]
    chat: dict[str, Any] | None
    stream: bool
    forwarded: dict[str, str] = field(default_factory=dict)
    """Client headers a native upstream reads (``anthropic-version``, ``anthropic-beta``)."""

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))


def chat_target(dep: Deployment) -> ChatTarget:
    """What a chat deployment can take, for a translation aimed at it."""
    return ChatTarget(max_output_tokens=dep.max_output_tokens, reasoning="reasoning" in dep.capabilities,
                      top_k=dep.type in _TAKES_TOP_K)


class Dialect(ABC):
    name: str
    endpoint: Endpoint

    @abstractmethod
    def parse(self, raw: bytes, headers: Mapping[str, str]) -> Inbound: ...

    @abstractmethod
    def request_for(self, inbound: Inbound) -> RequestFor: ...

    def hidden_usage(self, inbound: Inbound) -> bool:
        """A passed-through stream carries a usage event the gateway asked for and the client did not."""
        return False

    @abstractmethod
    def reply(self, sent: UpstreamRequest, answer: bytes, parsed: dict[str, Any] | None, inbound: Inbound,
              call: Call) -> bytes:
        """The client's answer body for an upstream's non-streamed answer."""

    def renderer(self, sent: UpstreamRequest, inbound: Inbound, call: Call) -> Renderer | None:
        """A translator for a stream from ``sent``'s API, or ``None`` to pass its events through."""
        return None

    def error_body(self, exc: GatewayError, request_id: str | None = None) -> tuple[int, bytes]:
        return exc.status, orjson.dumps(exc.to_dict())

    def error_event(self, exc: GatewayError) -> bytes:
        """The event that ends a passed-through stream which failed after it started."""
        return sse_error(exc)

    def cached_reply(self, completion: dict[str, Any], inbound: Inbound, call: Call, *, stream_events: list[bytes]
                     | None) -> bytes | list[bytes]:
        """A cached chat-shaped answer for this client: a body, or (``stream_events`` given: the answer as
        chat events) the events to send."""
        return stream_events if stream_events is not None else orjson.dumps(completion)


class OpenAIDialect(Dialect):
    """OpenAI's chat completions, completions and embeddings: validated, passed through."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.name = endpoint.value

    def parse(self, raw: bytes, headers: Mapping[str, str]) -> Inbound:
        body = parse_json_object(raw)
        validate(self.endpoint, body)
        return Inbound(body, None, body.get("stream") is True and self.endpoint is not Endpoint.EMBEDDINGS)

    def hidden_usage(self, inbound: Inbound) -> bool:
        return inbound.stream and not _include_usage(inbound.body)

    def request_for(self, inbound: Inbound) -> RequestFor:
        body = inbound.body
        if self.hidden_usage(inbound):
            # Ask the upstream for usage anyway (for cost and statistics); the relay drops that event again.
            body = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        endpoint = self.endpoint
        return lambda dep: UpstreamRequest(endpoint, body_for(dep, body, endpoint))

    def reply(self, sent: UpstreamRequest, answer: bytes, parsed: dict[str, Any] | None, inbound: Inbound,
              call: Call) -> bytes:
        return answer


class _Translating(Dialect):
    """A client protocol served natively by deployments that list it, through chat by the others."""

    @abstractmethod
    def translate(self, body: dict[str, Any], target: ChatTarget) -> Translation: ...

    def request_for(self, inbound: Inbound) -> RequestFor:
        def for_target(dep: Deployment) -> UpstreamRequest:
            if self.endpoint.value in dep.endpoints:
                return UpstreamRequest(self.endpoint, self._native_body(inbound.body, dep), headers=inbound.forwarded)
            translation = self.translate(inbound.body, chat_target(dep))
            return UpstreamRequest(Endpoint.CHAT, {**translation.body, "model": dep.model}, translation.note())

        return for_target

    def _native_body(self, body: dict[str, Any], dep: Deployment) -> dict[str, Any]:
        out = {**body, "model": dep.model}
        name = self._output_field
        cap = dep.max_output_tokens
        if cap is not None and isinstance(out.get(name), int) and out[name] > cap:
            out[name] = cap
        return out

    _output_field = "max_tokens"

    def _chat_answer(self, parsed: dict[str, Any] | None) -> dict[str, Any]:
        if parsed is None:
            raise UpstreamProtocolError("The upstream's answer could not be read.")
        return parsed


class MessagesDialect(_Translating):
    """Anthropic's Messages API."""

    name = "messages"
    endpoint = Endpoint.MESSAGES

    def parse(self, raw: bytes, headers: Mapping[str, str]) -> Inbound:
        body = parse_json_object(raw, what="The Anthropic API")
        validate_messages(body)
        forwarded = {name: headers[name] for name in _ANTHROPIC_HEADERS if name in headers}
        return Inbound(body, messages_to_chat(body).body, body.get("stream") is True, forwarded)

    def translate(self, body: dict[str, Any], target: ChatTarget) -> Translation:
        return messages_to_chat(body, target)

    def reply(self, sent: UpstreamRequest, answer: bytes, parsed: dict[str, Any] | None, inbound: Inbound,
              call: Call) -> bytes:
        if sent.endpoint is Endpoint.MESSAGES:
            return answer
        return orjson.dumps(self._message(self._chat_answer(parsed), inbound, call))

    def _message(self, completion: dict[str, Any], inbound: Inbound, call: Call) -> dict[str, Any]:
        return chat_to_message(completion, model=inbound.model, message_id=f"msg_{call.request_id}",
                               stop_sequences=inbound.body.get("stop_sequences") or ())

    def renderer(self, sent: UpstreamRequest, inbound: Inbound, call: Call) -> Renderer | None:
        if sent.endpoint is Endpoint.MESSAGES:
            return None
        facts = call.facts
        return MessagesStream(model=inbound.model, message_id=f"msg_{call.request_id}",
                              input_tokens=facts.prompt_tokens if facts is not None else 0,
                              stop_sequences=inbound.body.get("stop_sequences") or ())

    def error_body(self, exc: GatewayError, request_id: str | None = None) -> tuple[int, bytes]:
        return anthropic_error_body(exc, request_id)

    def error_event(self, exc: GatewayError) -> bytes:
        return anthropic_error_event(exc)

    def cached_reply(self, completion: dict[str, Any], inbound: Inbound, call: Call, *, stream_events: list[bytes]
                     | None) -> bytes | list[bytes]:
        if stream_events is None:
            return orjson.dumps(self._message(completion, inbound, call))
        renderer = self.renderer(UpstreamRequest(Endpoint.CHAT, {}), inbound, call)
        assert renderer is not None
        return [renderer.feed_bytes(b"".join(stream_events)), renderer.close()]

    def count_tokens(self, raw: bytes) -> tuple[str, int]:
        """``/v1/messages/count_tokens``: the model asked for, and the gateway's estimate of the prompt's tokens."""
        body = parse_json_object(raw, what="The Anthropic API")
        validate_messages(body, counting=True)
        return body["model"], estimate_request_tokens(messages_to_chat(body).body, Endpoint.CHAT)


class ResponsesDialect(_Translating):
    """OpenAI's Responses API, stateless (``store: false``)."""

    name = "responses"
    endpoint = Endpoint.RESPONSES
    _output_field = "max_output_tokens"

    def parse(self, raw: bytes, headers: Mapping[str, str]) -> Inbound:
        body = parse_json_object(raw)
        validate_responses(body)
        return Inbound(body, responses_to_chat(body).body, body.get("stream") is True)

    def translate(self, body: dict[str, Any], target: ChatTarget) -> Translation:
        return responses_to_chat(body, target)

    def _context(self, inbound: Inbound, call: Call) -> ResponsesContext:
        return ResponsesContext.for_request(inbound.body, response_id=f"resp_{call.request_id}",
                                            created_at=int(time.time()))

    def reply(self, sent: UpstreamRequest, answer: bytes, parsed: dict[str, Any] | None, inbound: Inbound,
              call: Call) -> bytes:
        if sent.endpoint is Endpoint.RESPONSES:
            return answer
        return orjson.dumps(chat_to_response(self._chat_answer(parsed), self._context(inbound, call)))

    def renderer(self, sent: UpstreamRequest, inbound: Inbound, call: Call) -> Renderer | None:
        if sent.endpoint is Endpoint.RESPONSES:
            return None
        return ResponsesStream(self._context(inbound, call))

    def error_event(self, exc: GatewayError) -> bytes:
        payload = {"type": "error", "code": exc.code, "message": exc.message, "param": exc.param}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"

    def cached_reply(self, completion: dict[str, Any], inbound: Inbound, call: Call, *, stream_events: list[bytes]
                     | None) -> bytes | list[bytes]:
        context = self._context(inbound, call)
        if stream_events is None:
            return orjson.dumps(chat_to_response(completion, context))
        renderer = ResponsesStream(context)
        return [renderer.feed_bytes(b"".join(stream_events)), renderer.close()]


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


DIALECTS: dict[str, Dialect] = {
    "/v1/chat/completions": OpenAIDialect(Endpoint.CHAT),
    "/v1/completions": OpenAIDialect(Endpoint.COMPLETIONS),
    "/v1/embeddings": OpenAIDialect(Endpoint.EMBEDDINGS),
    "/v1/messages": MessagesDialect(),
    "/v1/responses": ResponsesDialect(),
}
"""The proxy routes and the dialect each one speaks."""
