"""The two failures of the state layer.

``BackendUnavailable`` never leaves ``gateway.state``: the cache, limiter and budget checker catch it
and apply their failure mode. ``StateUnavailable`` is what a client sees when the policy says to fail
closed (``defaults.rate_limit_failure: closed``) and the shared state cannot be reached.
"""

from __future__ import annotations

from gateway.core.errors import GatewayError


class BackendUnavailable(Exception):
    """A state backend call failed, timed out, or was skipped while the backend is known to be down.

    Always raised ``from`` the lower library's exception (redis, OSError, TimeoutError) when there is one,
    so no redis exception type ever reaches code outside this package.
    """

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"state backend unavailable during {operation}: {reason}")
        self.operation = operation
        self.reason = reason


class StateUnavailable(GatewayError):
    """Rate limits or budgets cannot be checked and the policy says to refuse rather than admit."""

    status = 503
    type = "server_error"
    code = "state_unavailable"
    fault = "gateway"
