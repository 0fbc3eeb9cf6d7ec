"""Turn an upstream's HTTP error answer into the gateway error that says what happened, and keep the
deployment's secrets out of every message: ``scrub`` is the one function both upstream paths use
(here for the passthrough, ``litellm_errors`` for litellm)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

import orjson

from gateway.core.errors import (
    CONTEXT_LENGTH_EXCEEDED,
    ContextLengthExceeded,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.policy.models import Deployment
from gateway.providers.retry_after import retry_after_seconds

_MAX_MESSAGE = 600
MIN_SECRET_LENGTH = 6  # shorter header values ("1", "true") are not secrets and would mangle messages
_AUTH_SCHEMES = ("bearer ", "basic ", "token ", "key ")


def deployment_secrets(deployment: Deployment) -> tuple[str, ...]:
    """Everything of a deployment that must never reach a client or a log: its ``api_key``, the values
    of its ``headers`` (an Azure ``api-key``, a bearer token), the token inside an ``Authorization``
    value, and the password of ``user:password@`` in its ``api_base``."""
    found: list[str] = []
    for value in (deployment.api_key, *deployment.headers.values()):
        if not value:
            continue
        found.append(value)
        lowered = value.lower()
        for scheme in _AUTH_SCHEMES:
            if lowered.startswith(scheme):
                found.append(value[len(scheme):].strip())
    base = deployment.api_base or ""
    if "@" in base.partition("://")[2].partition("/")[0]:
        parts = urlsplit(base)
        if parts.password:
            password = unquote(parts.password)
            basic = base64.b64encode(f"{unquote(parts.username or '')}:{password}".encode()).decode()
            found += (parts.password, password, basic)
    # Longest first, so a value containing another is replaced whole.
    return tuple(sorted({s for s in found if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced, cut to a length fit for an error body."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def upstream_message(body: bytes, secrets: Iterable[str] = ()) -> str:
    """The upstream's own error message (OpenAI or Anthropic shape), shortened and with secrets scrubbed."""
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
        elif isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            message = parsed["message"]  # older vLLM and SGLang: the error object is the body
    except orjson.JSONDecodeError:
        message = body[: _MAX_MESSAGE * 4].decode("utf-8", "replace").strip()
    # Scrubbed before it is cut: a secret straddling the cut must not survive half-visible.
    return scrub(message, secrets)


def context_length_exceeded(error: object) -> bool:
    """Whether an upstream's error object says the prompt does not fit its context window.

    OpenAI says so with ``code: context_length_exceeded`` and llama.cpp with ``type:
    exceed_context_size_error``; vLLM and SGLang give no code, only their fixed sentence ("This
    model's maximum context length is N tokens"), so for them the sentence is the signal.
    """
    if not isinstance(error, dict):
        return False
    if error.get("code") == CONTEXT_LENGTH_EXCEEDED or error.get("type") == "exceed_context_size_error":
        return True
    message = error.get("message")
    return isinstance(message, str) and "maximum context length" in message


def _error_object(body: bytes) -> object:
    """The error object: ``{"error": {...}}`` (OpenAI, newer vLLM), or the body itself (older vLLM and
    SGLang answer ``{"object": "error", "message": ..., "type": ..., "code": 400}``)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    return parsed["error"] if isinstance(parsed.get("error"), dict) else parsed


def error_for_status(
    name: str, status: int, body: bytes, headers: Mapping[str, str], secrets: Iterable[str] = ()
) -> UpstreamError:
    detail = upstream_message(body, secrets)
    said = f": {detail}" if detail else ""
    if status == 429:
        return UpstreamRateLimited(f"deployment {name!r} is rate limited{said}", retry_after=retry_after_seconds(headers))
    if status in (408, 504):
        return UpstreamTimeout(f"deployment {name!r} timed out (upstream {status}){said}")
    if status in (401, 403):
        # The gateway's own credentials were refused: a configuration problem, never the caller's key.
        err = UpstreamError(f"deployment {name!r} refused the gateway's credentials (upstream {status})",
                            code="upstream_auth_failed")
        err.retryable = True
        return err
    if status in (503, 529):  # 529: Anthropic's "overloaded"
        return UpstreamUnavailable(f"deployment {name!r} is unavailable{said}")
    if status in (400, 413) and context_length_exceeded(_error_object(body)):
        return ContextLengthExceeded(f"deployment {name!r}: the request does not fit its context window{said}",
                                     param="messages")
    if status >= 500:
        err = UpstreamError(f"deployment {name!r} failed (upstream {status}){said}")
        err.retryable = status in (500, 502)
        return err
    # A 400 is about the request itself, which OpenAI's clients know as invalid_request_error.
    type_ = "invalid_request_error" if status in (400, 422) else None
    return UpstreamStatusError(f"deployment {name!r} rejected the request{said}", status=status, type_=type_)
