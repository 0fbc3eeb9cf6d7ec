"""Gateway errors in Anthropic's envelope and status codes.

Anthropic answers ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with its own small
set of statuses; a stream that fails after it started ends with an ``error`` event of the same shape.
The gateway's hierarchy maps onto it by status, so an Anthropic SDK raises the exception it would
raise for Anthropic itself (and retries what it would retry):

    400 invalid_request_error   InvalidRequest
    401 authentication_error    AuthenticationFailed
    403 permission_error        PermissionDenied, PolicyDenied
    404 not_found_error         ModelNotFound
    413 request_too_large       RequestTooLarge
    429 rate_limit_error        RateLimited, BudgetExceeded, UpstreamRateLimited
    500 api_error               any other failure, an upstream's bad answer (502) included
    504 timeout_error           UpstreamTimeout
    529 overloaded_error        NoRouteAvailable, UpstreamUnavailable (503)
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.errors import GatewayError
from gateway.protocols.sse_writer import named_event

_BY_STATUS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    402: (402, "billing_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
    529: (529, "overloaded_error"),
}


def anthropic_status(exc: GatewayError) -> tuple[int, str]:
    """The HTTP status and Anthropic error ``type`` for a gateway error."""
    mapped = _BY_STATUS.get(exc.status)
    if mapped is not None:
        return mapped
    if 400 <= exc.status < 500:  # another 4xx passed through from an upstream: still the caller's
        return exc.status, "invalid_request_error"
    return 500, "api_error"


def anthropic_error_body(exc: GatewayError, request_id: str | None = None) -> tuple[int, bytes]:
    """Status and JSON body of an error response; ``exc.headers`` (e.g. retry-after) go with it."""
    status, payload = _payload(exc, request_id)
    return status, orjson.dumps(payload)


def anthropic_error_event(exc: GatewayError, request_id: str | None = None) -> bytes:
    """The ``error`` event that ends a Messages stream which failed after it started."""
    return named_event("error", _payload(exc, request_id)[1])


def _payload(exc: GatewayError, request_id: str | None) -> tuple[int, dict[str, Any]]:
    status, kind = anthropic_status(exc)
    payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": exc.message}}
    if request_id is not None:
        payload["request_id"] = request_id
    return status, payload
