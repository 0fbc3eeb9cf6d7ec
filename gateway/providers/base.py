"""The provider protocol: how the executor talks to one upstream deployment.

A provider turns an OpenAI-shaped request body into an answer in OpenAI's wire format. Non-streaming
calls return the response bytes as they should reach the client; streaming calls return an
``UpstreamStream`` whose first SSE event has already been read, so the executor can still fall back
to another target before the client has seen a byte. Every failure is raised as a
``core.errors.UpstreamError`` subclass; library exceptions never cross this boundary.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.core.types import Endpoint, Usage
from gateway.policy.models import TimeoutSettings

LAST_EVENTS: dict[Endpoint, frozenset[str]] = {
    Endpoint.RESPONSES: frozenset({"response.completed", "response.incomplete", "response.failed"}),
    Endpoint.MESSAGES: frozenset({"message_stop"}),
}
"""The ``type`` of the event that ends a Responses or Messages stream (chat streams end with ``[DONE]``)."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. ``first_byte`` covers the wait for the response head and first stream event."""

    connect: float = 5.0
    first_byte: float = 60.0
    idle: float = 30.0
    total: float = 600.0

    @classmethod
    def bounded(cls, limit: Timeouts | TimeoutSettings, remaining: float = math.inf) -> Timeouts:
        """``limit``'s budgets with the whole call cut to ``remaining`` seconds (a request's deadline), and no
        phase longer than the whole. The one place budgets are clamped."""
        total = max(0.001, min(limit.total, remaining))
        return cls(connect=min(limit.connect, total), first_byte=min(limit.first_byte, total), idle=limit.idle,
                   total=total)

    def tighter(self, limit: Timeouts | TimeoutSettings) -> Timeouts:
        """Field by field, the tighter of these budgets and ``limit``'s."""
        return Timeouts(connect=min(self.connect, limit.connect), first_byte=min(self.first_byte, limit.first_byte),
                        idle=min(self.idle, limit.idle), total=min(self.total, limit.total))

    @property
    def head(self) -> float:
        """How long to wait for the answer's head (or a stream's first event): never beyond the whole call."""
        return min(self.first_byte, self.total)


@dataclass(slots=True)
class UpstreamCall:
    endpoint: Endpoint
    body: dict[str, Any]
    """The client's body (unknown fields kept), ``model`` already set to the upstream model id."""
    stream: bool
    request_id: str
    timeouts: Timeouts = field(default_factory=Timeouts)
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class UpstreamReply:
    body: bytes
    """The OpenAI-shaped JSON body, passed to the client unchanged."""
    status: int = 200
    usage: Usage | None = None
    parsed: dict[str, Any] | None = None
    """The body parsed, when the provider had to parse it anyway (saves a second parse)."""


class UpstreamStream:
    """An open upstream stream of OpenAI SSE events.

    Each item holds one or more complete events, each ending in a blank line (``b"data: {...}\\n\\n"``),
    passed through without re-encoding; the stream ends with ``b"data: [DONE]\\n\\n"``. ``first`` holds
    the first item, read before the stream was handed over. ``aclose`` releases the upstream connection (and cancels
    the upstream work when called early, e.g. on client disconnect).
    """

    __slots__ = ("first", "_rest", "_close", "_closed")

    def __init__(
        self,
        first: bytes,
        rest: AsyncIterator[bytes],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.first = first
        self._rest = rest
        self._close = close
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._rest

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._close()


class Provider(Protocol):
    """One upstream deployment's client. Built once per policy load, shared by all requests."""

    async def complete(self, call: UpstreamCall) -> UpstreamReply: ...

    async def open_stream(self, call: UpstreamCall) -> UpstreamStream: ...

    async def check_health(self) -> bool:
        """Cheap liveness probe of the upstream (used by active health checks)."""
        ...

    async def aclose(self) -> None: ...
