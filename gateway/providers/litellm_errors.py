"""Translate litellm's exceptions into the gateway's ``UpstreamError`` tree, in one place.

Classification is by exception class, by the numeric statuses litellm attaches, and by the classes
in the exception's cause chain (litellm wraps the transport's error), never by searching message
text: litellm's wording changes between releases, its classes do not. The table is ordered most
specific first because litellm's classes nest (``ContextWindowExceededError`` is a ``BadRequestError``)::

    litellm exception                               gateway error
    MidStreamFallbackError                          whatever its original_exception maps to
    Timeout                                         UpstreamTimeout            504
    RateLimitError                                  UpstreamRateLimited        429 (+ retry_after)
    ContextWindowExceededError                      UpstreamStatusError        400 context_length_exceeded
    ContentPolicyViolationError                     UpstreamStatusError        400 content_policy_violation
    AuthenticationError, PermissionDeniedError      UpstreamError              502 (the gateway's vendor key)
    NotFoundError                                   UpstreamStatusError        404
    BadRequestError, UnprocessableEntityError       UpstreamStatusError        4xx as given, else 400
    ServiceUnavailableError                         UpstreamUnavailable        503
    APIConnectionError, InternalServerError,        by cause: truncated/unparsable answer → UpstreamProtocolError,
      BadGatewayError                                 no connection → UpstreamUnavailable, vendor 503/529
                                                      (overloaded) → UpstreamUnavailable, else UpstreamError
                                                      (APIConnectionError: UpstreamUnavailable)
    APIResponseValidationError                      UpstreamProtocolError      502
    APIError                                        by its status code
    anything else                                   UpstreamError              502, class name only

An authentication or permission failure is the gateway's problem, not the caller's (their key was
accepted; ours was refused), so it is a 502 whose message never includes the vendor's text, which
may echo part of the key. Every other message is scrubbed of the deployment's secrets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

import aiohttp
import httpx

from gateway.core.errors import (
    GatewayError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers.litellm_runtime import litellm
from gateway.providers.retry_after import retry_after_seconds
from gateway.providers.upstream_errors import scrub

vendor = litellm.exceptions  # the exception classes litellm raises for every vendor

# Causes that mean "there was no usable connection": worth another attempt, maybe elsewhere.
_NO_CONNECTION: tuple[type[BaseException], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    aiohttp.ClientConnectorError,
    aiohttp.ServerDisconnectedError,
    ConnectionError,
)
# Causes that mean "the answer arrived broken": cut mid-body, unparsable, or a stream that ended
# before its finish reason (litellm chains StopAsyncIteration there).
_BROKEN_ANSWER: tuple[type[BaseException], ...] = (
    aiohttp.ClientPayloadError,
    httpx.RemoteProtocolError,
    json.JSONDecodeError,
    StopAsyncIteration,
)
_OVERLOADED = (503, 529)  # 529: Anthropic's "overloaded_error", which litellm files as a 500

Builder = Callable[[BaseException, str], UpstreamError]


def _response_headers(exc: BaseException) -> Mapping[str, str] | None:
    headers: Mapping[str, str] | None = getattr(exc, "litellm_response_headers", None)
    if headers:
        return headers
    headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first (cycles cut)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _caused_by(exc: BaseException, classes: tuple[type[BaseException], ...]) -> bool:
    return any(isinstance(link, classes) for link in _chain(exc)[1:])


def _status(exc: BaseException, default: int) -> int:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else default


def _rate_limited(exc: BaseException, msg: str) -> UpstreamError:
    return UpstreamRateLimited(msg, retry_after=retry_after_seconds(_response_headers(exc)))


def _bad_request(exc: BaseException, msg: str) -> UpstreamError:
    status = _status(exc, 400)
    return UpstreamStatusError(
        msg, status=status if 400 <= status < 500 else 400, type_="invalid_request_error"
    )


def _credentials(exc: BaseException, _msg: str) -> UpstreamError:
    # The vendor's text is dropped on purpose: "Incorrect API key provided: sk-ab***yz" style echoes.
    return UpstreamError(
        f"the upstream refused the gateway's credentials (HTTP {_status(exc, 401)}); check the deployment's key",
        code="upstream_auth_failed",
    )


def _transport(exc: BaseException, msg: str) -> UpstreamError:
    """litellm's connection-level and 5xx classes: the cause chain says what actually happened."""
    if _caused_by(exc, _BROKEN_ANSWER):
        return UpstreamProtocolError(msg)
    if _caused_by(exc, _NO_CONNECTION) or getattr(exc, "provider_status_code", None) in _OVERLOADED:
        return UpstreamUnavailable(msg)
    if isinstance(exc, vendor.APIConnectionError):
        return UpstreamUnavailable(msg)
    return UpstreamError(msg)


def _by_status(exc: BaseException, msg: str) -> UpstreamError:
    status = _status(exc, 502)
    if status == 429:
        return _rate_limited(exc, msg)
    if status in (401, 403):
        return _credentials(exc, msg)
    if status in (408, 504):
        return UpstreamTimeout(msg)
    if status == 503:
        return UpstreamUnavailable(msg)
    if 400 <= status < 500:
        return UpstreamStatusError(msg, status=status)
    return _transport(exc, msg)


_TABLE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Builder], ...] = (
    (vendor.Timeout, lambda exc, msg: UpstreamTimeout(msg)),
    (vendor.RateLimitError, _rate_limited),
    (
        vendor.ContextWindowExceededError,
        lambda exc, msg: UpstreamStatusError(
            msg, status=400, type_="invalid_request_error", code="context_length_exceeded"
        ),
    ),
    (
        vendor.ContentPolicyViolationError,
        lambda exc, msg: UpstreamStatusError(
            msg, status=400, type_="invalid_request_error", code="content_policy_violation"
        ),
    ),
    ((vendor.AuthenticationError, vendor.PermissionDeniedError), _credentials),
    (vendor.NotFoundError, lambda exc, msg: UpstreamStatusError(msg, status=404, type_="invalid_request_error")),
    ((vendor.BadRequestError, vendor.UnprocessableEntityError, vendor.InvalidRequestError), _bad_request),
    (vendor.ServiceUnavailableError, lambda exc, msg: UpstreamUnavailable(msg)),
    ((vendor.APIConnectionError, vendor.InternalServerError, vendor.BadGatewayError), _transport),
    (vendor.APIResponseValidationError, lambda exc, msg: UpstreamProtocolError(msg)),
    (vendor.APIError, _by_status),
)


def translate(exc: BaseException, *, deployment: str, secrets: Iterable[str]) -> GatewayError:
    """The gateway error for a failure raised by litellm while calling ``deployment``.

    Gateway errors pass through unchanged (they were raised on purpose inside the adapter).
    The caller chains the result: ``raise translate(exc, ...) from exc``.
    """
    if isinstance(exc, GatewayError):
        return exc
    # litellm re-wraps a stream's failure as MidStreamFallbackError (a ServiceUnavailableError,
    # whatever happened); the original says what it was, e.g. a 429 on a Gemini stream.
    while isinstance(exc, vendor.MidStreamFallbackError) and isinstance(exc.original_exception, Exception):
        exc = exc.original_exception
    msg = scrub(f"deployment {deployment!r}: {exc}", secrets)
    for classes, build in _TABLE:
        if isinstance(exc, classes):
            return build(exc, msg)
    if _caused_by(exc, _NO_CONNECTION):
        return UpstreamUnavailable(msg)
    # An unclassified exception is most likely a bug inside litellm: name it, do not echo its text.
    return UpstreamError(f"deployment {deployment!r}: unexpected {type(exc).__name__} from litellm")
