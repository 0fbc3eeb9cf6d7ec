"""Per-request working state, shared by the proxy's steps (routing, admission, relay, accounting)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.core.ids import new_id
from gateway.core.types import Decision, Endpoint, RequestFacts
from gateway.pipeline.auth import Identity
from gateway.routing.runtime import PolicySnapshot
from gateway.state import CachePlan, RateTicket

REQUEST_ID_MAX = 128
_REQUEST_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/+=")


def request_id_from(headers: Mapping[str, str]) -> str:
    """The client's ``x-request-id`` when it is a sane id (it is echoed back and logged), else a new one."""
    value = headers.get("x-request-id")
    if not value or len(value) > REQUEST_ID_MAX or not set(value) <= _REQUEST_ID_CHARS:
        return new_id()
    return value


@dataclass(slots=True)
class Call:
    endpoint: Endpoint
    request_id: str
    started: float
    identity: Identity | None = None
    facts: RequestFacts | None = None
    decision: Decision | None = None
    snapshot: PolicySnapshot | None = None
    ticket: RateTicket | None = None
    plan: CachePlan | None = None
    cache_result: str | None = None
    """hit, miss or bypass once the cache was consulted; None when caching is off for the request."""
    spend_id: str = field(default_factory=new_id)
    """Idempotency key for spend: generated here, never taken from the client's x-request-id."""
    body: dict[str, Any] | None = None
    upstream_called: bool = False
    """The request was handed to the executor (an upstream may have started working on it)."""
