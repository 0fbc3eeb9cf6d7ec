"""litellm exception → gateway error, by class; secrets never reach a message."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import pytest

from gateway.core.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

KEY = "sk-ant-test-0123456789-SECRET"


@pytest.fixture(scope="module")
def errors() -> ModuleType:
    """Imported once per module: importing it imports litellm (~5 s)."""
    return importlib.import_module("gateway.providers.litellm_errors")


@pytest.fixture(scope="module")
def lx(errors: ModuleType) -> Any:
    return errors.litellm.exceptions


def _response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status, headers=headers, request=httpx.Request("POST", "http://upstream.test/v1/messages")
    )


def _raised_from(exc: BaseException, cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise exc from inner
    except BaseException as outer:
        return outer


CASES: list[tuple[str, Callable[[Any], BaseException], type[GatewayError], int]] = [
    ("timeout", lambda lx: lx.Timeout(f"read timed out {KEY}", "m", "anthropic"), UpstreamTimeout, 504),
    (
        "context window",
        lambda lx: lx.ContextWindowExceededError(f"too long {KEY}", "m", "anthropic"),
        UpstreamStatusError,
        400,
    ),
    (
        "content policy",
        lambda lx: lx.ContentPolicyViolationError("no", "m", "gemini"),
        UpstreamStatusError,
        400,
    ),
    ("bad request", lambda lx: lx.BadRequestError(f"bad {KEY}", "m", "anthropic"), UpstreamStatusError, 400),
    (
        "unprocessable",
        lambda lx: lx.UnprocessableEntityError("bad", "m", "anthropic", response=_response(422)),
        UpstreamStatusError,
        422,
    ),
    ("not found", lambda lx: lx.NotFoundError("no such model", "m", "anthropic"), UpstreamStatusError, 404),
    (
        "auth",
        lambda lx: lx.AuthenticationError(f"Incorrect API key {KEY[:10]}", "anthropic", "m"),
        UpstreamError,
        502,
    ),
    (
        "permission",
        lambda lx: lx.PermissionDeniedError("forbidden", "anthropic", "m", response=_response(403)),
        UpstreamError,
        502,
    ),
    ("unavailable", lambda lx: lx.ServiceUnavailableError("down", "gemini", "m"), UpstreamUnavailable, 503),
    ("connection", lambda lx: lx.APIConnectionError("conn", "anthropic", "m"), UpstreamUnavailable, 503),
    ("internal", lambda lx: lx.InternalServerError("oops", "anthropic", "m"), UpstreamError, 502),
    (
        "overloaded (Anthropic 529)",
        lambda lx: lx.InternalServerError("overloaded", "anthropic", "m", provider_status_code=529),
        UpstreamUnavailable,
        503,
    ),
    (
        "refused connection inside InternalServerError",
        lambda lx: _raised_from(
            lx.InternalServerError("cannot connect", "anthropic", "m"), httpx.ConnectError("refused")
        ),
        UpstreamUnavailable,
        503,
    ),
    (
        "stream ended before finish",
        lambda lx: _raised_from(lx.APIConnectionError("ended", "anthropic", "m"), StopAsyncIteration()),
        UpstreamProtocolError,
        502,
    ),
    (
        "mid-stream 429",
        lambda lx: lx.MidStreamFallbackError(
            "mid", "m", "gemini", original_exception=lx.RateLimitError("slow down", "gemini", "m")
        ),
        UpstreamRateLimited,
        429,
    ),
    ("generic APIError 503", lambda lx: lx.APIError(503, "x", "anthropic", "m"), UpstreamUnavailable, 503),
    ("unknown exception", lambda lx: ValueError(f"bug {KEY}"), UpstreamError, 502),
]


@pytest.mark.parametrize(("build", "expected", "status"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_translation_by_class(
    errors: ModuleType, lx: Any, build: Callable[[Any], BaseException], expected: type, status: int
) -> None:
    error = errors.translate(build(lx), deployment="claude", secrets=(KEY,))
    assert type(error) is expected
    assert error.status == status
    assert KEY not in str(error) and KEY[:10] not in error.message
    assert KEY not in str(error.to_dict())


def test_caller_errors_are_not_retryable_and_blamed_on_the_caller(errors: ModuleType, lx: Any) -> None:
    error = errors.translate(lx.BadRequestError("bad", "m", "anthropic"), deployment="d", secrets=())
    assert not error.retryable and error.fault == "caller"
    error = errors.translate(lx.AuthenticationError("bad key", "anthropic", "m"), deployment="d", secrets=())
    assert error.fault == "provider"  # the gateway's vendor key, not the caller's


def test_rate_limit_carries_retry_after_from_the_vendor_response(errors: ModuleType, lx: Any) -> None:
    exc = lx.RateLimitError("slow down", "anthropic", "m", response=_response(429, {"retry-after": "7"}))
    error = errors.translate(exc, deployment="d", secrets=())
    assert isinstance(error, UpstreamRateLimited)
    assert error.retry_after == 7.0 and error.headers["retry-after"] == "7"


def test_gateway_errors_pass_through(errors: ModuleType) -> None:
    original = InvalidRequest("mine")
    assert errors.translate(original, deployment="d", secrets=()) is original


def test_scrub_replaces_every_secret_and_bounds_length(errors: ModuleType) -> None:
    text = errors.scrub(f"key={KEY} again {KEY} bearer tok-123456 " + "x" * 2000, (KEY, "tok-123456"))
    assert KEY not in text and "tok-123456" not in text and len(text) <= 600
