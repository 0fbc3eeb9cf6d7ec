"""Upstream error answers → gateway errors (providers/upstream_errors.py), with the shapes real servers
send: llama.cpp's own error types, OpenAI's codes, vLLM's message-only 400s."""

from __future__ import annotations

import orjson
import pytest

from gateway.core.errors import ContextLengthExceeded, UpstreamStatusError, UpstreamUnavailable
from gateway.providers.upstream_errors import error_for_status

LLAMACPP_CONTEXT = {"error": {"code": 400, "message": "request (3012 tokens) exceeds the available context size "
                              "(2048 tokens), try increasing it", "type": "exceed_context_size_error",
                              "n_prompt_tokens": 3012, "n_ctx": 2048}}
OPENAI_CONTEXT = {"error": {"message": "This model's maximum context length is 128000 tokens.",
                            "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
VLLM_CONTEXT = {"object": "error", "message": "This model's maximum context length is 4096 tokens.",
                "type": "BadRequestError", "param": None, "code": 400}
LLAMACPP_GRAMMAR = {"error": {"code": 400, "message": "Failed to parse grammar", "type": "invalid_request_error"}}
LLAMACPP_LOADING = {"error": {"message": "Loading model", "type": "unavailable_error", "code": 503}}


@pytest.mark.parametrize("status, body, cls, falls_back, type_, code", [
    (400, LLAMACPP_CONTEXT, ContextLengthExceeded, True, "invalid_request_error", "context_length_exceeded"),
    (400, OPENAI_CONTEXT, ContextLengthExceeded, True, "invalid_request_error", "context_length_exceeded"),
    # vLLM and SGLang say it only in their fixed sentence, which is recognised (and nothing else of their prose)
    (400, VLLM_CONTEXT, ContextLengthExceeded, True, "invalid_request_error", "context_length_exceeded"),
    (400, LLAMACPP_GRAMMAR, UpstreamStatusError, False, "invalid_request_error", "upstream_error"),
    (404, {"error": {"message": "no such model", "type": "not_found_error"}}, UpstreamStatusError, False,
     "upstream_error", "upstream_error"),
    (503, LLAMACPP_LOADING, UpstreamUnavailable, False, "upstream_error", "upstream_unavailable"),
])
def test_error_shapes(status: int, body: dict, cls: type, falls_back: bool, type_: str, code: str) -> None:
    error = error_for_status("smollm", status, orjson.dumps(body), {})
    assert type(error) is cls
    assert (error.falls_back, error.type, error.code) == (falls_back, type_, code)
    assert not (isinstance(error, UpstreamStatusError) and error.retryable), "a 4xx is never retried in place"
    if isinstance(error, ContextLengthExceeded):
        assert error.status == 400 and error.param == "messages" and error.fault == "caller"
        assert "context" in error.message


def test_the_servers_words_are_kept_and_the_key_scrubbed() -> None:
    body = orjson.dumps({"error": {"message": "bad key sk-secret-123456 in request", "type": "exceed_context_size_error"}})
    error = error_for_status("d", 400, body, {}, secrets=("sk-secret-123456",))
    assert isinstance(error, ContextLengthExceeded)
    assert "sk-secret-123456" not in error.message and "***" in error.message


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"error": "plain string"}', b'{"error": {"type": 5}}'])
def test_odd_400_bodies_are_plain_status_errors(body: bytes) -> None:
    error = error_for_status("d", 400, body, {})
    assert type(error) is UpstreamStatusError and error.status == 400
