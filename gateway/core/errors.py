"""The one error hierarchy of the gateway.

Every failure a client can see is a ``GatewayError``. Each class knows its HTTP status, the OpenAI
error ``type``, whether the executor may retry it on another attempt or target, and whose fault it
was (``fault``: caller, policy, provider, gateway) for metrics. ``api/errors.py`` is the single place
that renders them, as ``{"error": {"message", "type", "param", "code"}}`` or as a final SSE event.

    GatewayError                      500 server_error            gateway
    ├── InvalidRequest                400 invalid_request_error   caller
    │   ├── RequestTooLarge           413
    │   ├── RequestTimeout            408 (the body did not arrive in time)
    │   └── ModelNotFound             404 (code model_not_found)
    ├── AuthenticationFailed          401 (code invalid_api_key)  caller
    ├── PermissionDenied              403 permission_error        caller
    ├── PolicyDenied                  403 (code policy_denied)    policy
    ├── RateLimited                   429 requests|tokens         caller
    ├── BudgetExceeded                429 insufficient_quota      policy
    ├── NoRouteForRequest             400 invalid_request_error   caller|policy (code says why; not retried)
    ├── NoRouteAvailable              503 (code no_route)         policy   (candidates unhealthy or saturated)
    └── UpstreamError                 502 upstream_error          provider   (retryable)
        ├── UpstreamStatusError       status the upstream gave (4xx passed through, not retryable)
        │   └── ContextLengthExceeded 400 (code context_length_exceeded): falls back, never retried
        ├── UpstreamRateLimited       429, carries retry_after
        ├── UpstreamUnavailable       503 (connect refused, breaker open, saturated)
        ├── UpstreamTimeout           504 (connect, first byte, idle gap, total)
        └── UpstreamProtocolError     502 (malformed or truncated upstream answer)
"""

from __future__ import annotations

from typing import Any

FAULTS = ("caller", "policy", "provider", "gateway")
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None
    retryable: bool = False
    falls_back: bool = False
    """Not worth retrying on the same deployment, but another target may serve the request."""
    fault: str = "gateway"
    failures: tuple[str, ...] = ()
    """``deployment:error`` for each target that failed before this error ended the request."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def kind(self) -> str:
        """Bounded name of the error class, used as a metrics label and in access logs."""
        return type(self).__name__

    @property
    def tries_next_target(self) -> bool:
        """Another deployment may succeed where this one failed: a retryable failure, or a prompt that
        did not fit this deployment's context window (a larger one may take it)."""
        return self.retryable or self.falls_back

    def summary(self) -> str:
        """What went wrong, in the gateway's own words: never an upstream's or a library's text."""
        if self.code == CONTEXT_LENGTH_EXCEEDED:
            return "the prompt is longer than its context window"
        return _SUMMARIES.get(self.code or "", "failed")

    def restate(self, message: str) -> None:
        """Replace the message (the executor's summary of every failed target), keeping status and type."""
        self.message = message
        self.args = (message,)

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    fault = "caller"


class RequestTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class RequestTimeout(InvalidRequest):
    status = 408
    code = "request_timeout"


class ModelNotFound(InvalidRequest):
    status = 404
    code = "model_not_found"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"
    fault = "caller"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"
    fault = "caller"


class PolicyDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "policy_denied"
    fault = "policy"


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"
    fault = "caller"


class BudgetExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
    fault = "policy"


class NoRouteForRequest(InvalidRequest):
    """No deployment can serve the request because of what it asks (an endpoint, a capability, a
    prompt too long, a rule's requirement): asking again will not help, so it is a 400 the SDKs do
    not retry. ``code`` names why; the message lists each candidate and the reason it was dropped."""

    code = "no_route_for_request"


class NoRouteAvailable(GatewayError):
    status = 503
    type = "server_error"
    code = "no_route"
    fault = "policy"


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"
    retryable = True
    fault = "provider"


class UpstreamStatusError(UpstreamError):
    """An upstream answered with an error status that is not worth retrying (most 4xx)."""

    retryable = False

    def __init__(self, message: str, *, status: int, type_: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.status = status
        if type_:
            self.type = type_
        # A 4xx from a well-behaved upstream is about the request, i.e. the caller's doing.
        self.fault = "caller" if 400 <= status < 500 else "provider"

    def summary(self) -> str:
        if self.code == CONTEXT_LENGTH_EXCEEDED:
            return super().summary()
        return f"rejected the request (HTTP {self.status})"


class ContextLengthExceeded(UpstreamStatusError):
    """The upstream's context window is smaller than this request: a target with a larger one may serve it."""

    code = CONTEXT_LENGTH_EXCEEDED
    falls_back = True

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(message, status=400, type_="invalid_request_error", **kw)


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers.setdefault("retry-after", str(max(0, round(retry_after))))

    def summary(self) -> str:
        wait = f" (retry after {self.retry_after:g} s)" if self.retry_after is not None else ""
        return f"rate limited{wait}"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class UpstreamProtocolError(UpstreamError):
    status = 502
    code = "upstream_bad_response"


_SUMMARIES = {
    "upstream_error": "failed",
    "upstream_unavailable": "unavailable",
    "upstream_timeout": "timed out",
    "upstream_bad_response": "sent a malformed or truncated answer",
    "rate_limit_exceeded": "rate limited",
    "upstream_auth_failed": "refused the gateway's credentials",
    "breaker_open": "skipped: circuit breaker open",
    "saturated": "skipped: at its concurrency limit",
}
