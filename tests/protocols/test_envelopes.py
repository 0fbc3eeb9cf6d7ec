"""Errors in each protocol's envelope, usage objects, count_tokens, and what a translation reports.

Errors are checked the way a client meets them: the official SDK reads the rendered status and body
and must raise the exception it raises for the vendor itself."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import orjson
import pytest

from gateway.core import errors
from gateway.core.types import Endpoint, Usage
from gateway.protocols import anthropic_messages_response as messages_out
from gateway.protocols import openai_responses_response as responses_out
from gateway.protocols.anthropic_errors import anthropic_error_body, anthropic_error_event, anthropic_status
from gateway.protocols.anthropic_messages_request import messages_to_chat
from gateway.protocols.anthropic_messages_validation import validate_messages
from gateway.protocols.translation import ChatTarget, Translation
from gateway.routing.tokens import estimate_request_tokens
from tests.protocols.sdk_clients import anthropic_client

JSON = {"content-type": "application/json"}

ERRORS: list[tuple[errors.GatewayError, int, str, type[anthropic.APIStatusError]]] = [
    (errors.InvalidRequest("bad"), 400, "invalid_request_error", anthropic.BadRequestError),
    (errors.RequestTooLarge("big"), 413, "request_too_large", anthropic.ContentTooLargeError),
    (errors.ModelNotFound("no model"), 404, "not_found_error", anthropic.NotFoundError),
    (errors.AuthenticationFailed("no key"), 401, "authentication_error", anthropic.AuthenticationError),
    (errors.PermissionDenied("no"), 403, "permission_error", anthropic.PermissionDeniedError),
    (errors.PolicyDenied("policy"), 403, "permission_error", anthropic.PermissionDeniedError),
    (errors.RateLimited("slow down"), 429, "rate_limit_error", anthropic.RateLimitError),
    (errors.BudgetExceeded("spent"), 429, "rate_limit_error", anthropic.RateLimitError),
    (errors.UpstreamRateLimited("upstream busy", retry_after=3), 429, "rate_limit_error", anthropic.RateLimitError),
    (errors.NoRouteAvailable("nothing fits"), 529, "overloaded_error", anthropic.OverloadedError),
    (errors.UpstreamUnavailable("down"), 529, "overloaded_error", anthropic.OverloadedError),
    (errors.UpstreamTimeout("slow"), 504, "timeout_error", anthropic.GatewayTimeoutError),
    (errors.UpstreamError("broken"), 500, "api_error", anthropic.InternalServerError),
    (errors.UpstreamProtocolError("garbled"), 500, "api_error", anthropic.InternalServerError),
    (errors.GatewayError("oops"), 500, "api_error", anthropic.InternalServerError),
    (errors.UpstreamStatusError("teapot", status=418), 418, "invalid_request_error", anthropic.APIStatusError),
    (errors.UpstreamStatusError("bad gateway", status=502), 500, "api_error", anthropic.InternalServerError),
]


@pytest.mark.parametrize("error, status, kind, sdk_error", ERRORS, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None)
def test_anthropic_error_envelope_and_status(error: errors.GatewayError, status: int, kind: str,
                                              sdk_error: type[anthropic.APIStatusError]) -> None:
    assert anthropic_status(error) == (status, kind)
    got_status, body = anthropic_error_body(error, request_id="req_1")
    assert got_status == status
    assert orjson.loads(body) == {"type": "error", "error": {"type": kind, "message": error.message}, "request_id": "req_1"}
    client = anthropic_client(body, status=status, headers={**JSON, **error.headers})
    with pytest.raises(sdk_error) as info:
        client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == status and error.message in str(info.value)


def test_anthropic_error_event_is_one_named_event() -> None:
    raw = anthropic_error_event(errors.UpstreamTimeout("idle"))
    assert raw == b'event: error\ndata: {"type":"error","error":{"type":"timeout_error","message":"idle"}}\n\n'


def test_error_messages_never_carry_more_than_the_error_message() -> None:
    secret = errors.UpstreamError("upstream said no")
    secret.__cause__ = RuntimeError("Authorization: Bearer sk-live-123")
    assert b"sk-live" not in anthropic_error_body(secret)[1] and b"sk-live" not in anthropic_error_event(secret)


@pytest.mark.parametrize("usage, anthropic_usage, responses_usage", [
    ({"prompt_tokens": 120, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 100},
      "completion_tokens_details": {"reasoning_tokens": 3}},
     {"input_tokens": 20, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100},
     {"input_tokens": 120, "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0}, "output_tokens": 7,
      "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 127}),
    # odd upstreams: cached above the prompt, negative, strings, details that are not objects
    ({"prompt_tokens": 5, "completion_tokens": -3, "prompt_tokens_details": {"cached_tokens": 50}, "completion_tokens_details": []},
     {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5},
     {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 5, "cache_write_tokens": 0}, "output_tokens": 0,
      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5}),
    ({"prompt_tokens": "12", "completion_tokens": True},
     {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
     {"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": 0,
      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}),
])
def test_usage_objects_from_chat_usage(usage: dict[str, Any], anthropic_usage: dict[str, int], responses_usage: dict[str, Any]) -> None:
    assert messages_out.usage_from_chat(usage) == anthropic_usage
    assert responses_out.usage_from_chat(usage) == responses_usage
    anthropic.types.Usage.model_validate(anthropic_usage)
    openai.types.responses.ResponseUsage.model_validate(responses_usage)


def test_usage_objects_from_the_gateways_usage() -> None:
    usage = Usage(prompt_tokens=30, completion_tokens=4)
    assert messages_out.usage_from_gateway(usage) == {"input_tokens": 30, "output_tokens": 4,
                                                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    assert responses_out.usage_from_gateway(usage)["total_tokens"] == 34
    assert messages_out.usage_from_chat(None)["input_tokens"] == 0 and responses_out.usage_from_chat(None) is None


def test_count_tokens_counts_the_translated_body() -> None:
    """What /v1/messages/count_tokens answers: the gateway's estimate of the chat body the request becomes."""
    body = {"model": "claude-sonnet-4-5", "system": "You are terse.",
            "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "messages": [{"role": "user", "content": "What's the weather in Paris?"}]}
    validate_messages(body, counting=True)
    count = estimate_request_tokens(messages_to_chat(body).body, Endpoint.CHAT)
    assert messages_out.count_tokens_response(count) == {"input_tokens": count}
    assert anthropic.types.MessageTokensCount.model_validate({"input_tokens": count})
    longer = {**body, "messages": body["messages"] + [{"role": "assistant", "content": "Sunny."},
                                                      {"role": "user", "content": "And in Rome, tomorrow morning?"}]}
    assert 20 < count < estimate_request_tokens(messages_to_chat(longer).body, Endpoint.CHAT)
    with pytest.raises(errors.InvalidRequest, match="max_tokens"):
        validate_messages(body)  # a Messages call, unlike count_tokens, needs max_tokens


@pytest.mark.parametrize("asked, cap, given, clamped", [
    (32000, 8192, 8192, ["max_tokens:32000>8192"]),
    (100, 8192, 100, []),
    (8192, 8192, 8192, []),
    (500, None, 500, []),
    (None, 8192, None, []),  # nothing asked (Responses): the upstream's default applies
])
def test_max_tokens_is_clamped_to_the_target(asked: int | None, cap: int | None, given: int | None, clamped: list[str]) -> None:
    out = Translation({})
    out.clamp_max_tokens("max_tokens", asked, ChatTarget(max_output_tokens=cap))
    assert out.body.get("max_tokens") == given and out.clamped == clamped


def test_note_lists_what_was_dropped_and_clamped_once() -> None:
    out = Translation({})
    assert out.note() == ""
    for name in ("cache_control", "thinking", "cache_control"):
        out.drop(name)
    out.clamp_max_tokens("max_tokens", 9, ChatTarget(max_output_tokens=4))
    assert out.note() == "dropped=cache_control,thinking; clamped=max_tokens:9>4"


def test_dropped_names_are_header_safe_and_bounded() -> None:
    """Unknown field names come from the client and end up in a response header: no CR/LF, no quotes,
    no unbounded length or count."""
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "evil\r\nSet-Cookie: a=b": 1, "ünïcode\"quote": 2, "x" * 5000: 3, **{f"f{i}": i for i in range(100)}}
    validate_messages(body)
    out = messages_to_chat(body)
    note = out.note()
    assert "\r" not in note and "\n" not in note and '"' not in note and note.isascii()
    assert out.dropped[:2] == ["evil__Set-Cookie:_a_b", "_n_code_quote"] and out.dropped[2] == "x" * 64
    assert len(out.dropped) == 25 and out.dropped[-1] == "more" and len(note) < 1024
