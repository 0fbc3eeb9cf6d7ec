"""Turn an upstream's HTTP error answer into the gateway error that says what happened."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from gateway.core.errors import (
    ContextLengthExceeded,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers.retry_after import retry_after_seconds

_MAX_MESSAGE = 500
# How servers say "the prompt does not fit": llama.cpp's error type, OpenAI's (and compatible servers') code.
_CONTEXT_TYPES = frozenset({"exceed_context_size_error"})
_CONTEXT_CODES = frozenset({"context_length_exceeded"})


def _error_object(body: bytes) -> dict[str, object]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def upstream_message(body: bytes, secret: str = "") -> str:
    """The upstream's own error message (OpenAI or Anthropic shape), shortened and with the key scrubbed."""
    message = ""
    try:
        parsed = orjson.loads(body)
        error = parsed.get("error") if isinstance(parsed, dict) else None
        if isinstance(error, dict):
            message = str(error.get("message") or "")
        elif isinstance(error, str):
            message = error
        elif isinstance(parsed, dict) and "detail" in parsed:
            message = str(parsed["detail"])
    except orjson.JSONDecodeError:
        message = body[:_MAX_MESSAGE].decode("utf-8", "replace").strip()
    if secret and len(secret) >= 6:
        message = message.replace(secret, "***")
    return message[:_MAX_MESSAGE]


def error_for_status(name: str, status: int, body: bytes, headers: Mapping[str, str], secret: str = "") -> UpstreamError:
    detail = upstream_message(body, secret)
    said = f": {detail}" if detail else ""
    if status == 429:
        return UpstreamRateLimited(f"deployment {name!r} is rate limited{said}", retry_after=retry_after_seconds(headers))
    if status in (408, 504):
        return UpstreamTimeout(f"deployment {name!r} timed out (upstream {status}){said}")
    if status in (401, 403):
        # The gateway's own credentials were refused: a configuration problem, never the caller's key.
        err = UpstreamError(f"deployment {name!r} refused the gateway's credentials (upstream {status})")
        err.retryable = True
        return err
    if status == 503:
        return UpstreamUnavailable(f"deployment {name!r} is unavailable{said}")
    if status in (400, 413):
        error = _error_object(body)
        if error.get("type") in _CONTEXT_TYPES or error.get("code") in _CONTEXT_CODES:
            return ContextLengthExceeded(f"deployment {name!r}: the request does not fit its context window{said}",
                                         param="messages")
    if status >= 500:
        err = UpstreamError(f"deployment {name!r} failed (upstream {status}){said}")
        err.retryable = status in (500, 502)
        return err
    # A 400 is about the request itself, which OpenAI's clients know as invalid_request_error.
    type_ = "invalid_request_error" if status in (400, 422) else None
    return UpstreamStatusError(f"deployment {name!r} rejected the request{said}", status=status, type_=type_)
