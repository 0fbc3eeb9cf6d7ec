"""uvicorn's httptools protocol with what it lacks against slow clients.

uvicorn bounds the idle time between keep-alive requests, but not the time a client may take to send
a request head: a client that sends one header line every few seconds holds its connection (and a
file descriptor) for ever, and enough of them starve every tenant, health checks included. This
protocol adds, per process:

- a **head timeout** (``GATEWAY_HEADER_TIMEOUT``, 10 s): a request head — from the connection's first
  byte, or from the end of the previous response on a keep-alive connection — must be complete within
  it, or the connection is closed;
- a **connection cap** (``GATEWAY_MAX_CONNECTIONS``): a new connection beyond it closes the oldest
  connection that is still sending its head (a request being served is never cut for it); if every
  connection is busy with a request, the new one is closed instead.

Request bodies are bounded in time by the entrance (``GATEWAY_BODY_TIMEOUT``, a 408). Settings come
from the environment once per process, like the rest of a worker's settings.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings

log = logging.getLogger("gateway.server")


def raise_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; returns the limit now in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return 1 << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


@functools.cache
def _limits() -> tuple[float, int]:
    settings = Settings.from_env()
    # Leave a quarter of the descriptors for upstream connections, Redis and files.
    files = raise_file_limit()
    cap = min(settings.max_connections, files * 3 // 4)
    if cap < settings.max_connections:
        log.warning("GATEWAY_MAX_CONNECTIONS=%d lowered to %d: this process may open %d files",
                    settings.max_connections, cap, files)
    return settings.header_timeout, cap


class SlowClientGuardProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus a head timeout and a connection cap that evicts slow heads first."""

    _head_timer: asyncio.TimerHandle | None = None

    def _waiting(self) -> OrderedDict[SlowClientGuardProtocol, None]:
        state: Any = self.server_state
        waiting: OrderedDict[SlowClientGuardProtocol, None] | None = getattr(state, "gateway_waiting_heads", None)
        if waiting is None:
            waiting = state.gateway_waiting_heads = OrderedDict()
        return waiting

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _, cap = _limits()
        if len(self.connections) > cap and not self._evict_a_slow_head():
            log.warning("connection cap of %d reached with every connection busy: refusing a new one", cap)
            transport.close()
            return
        self._await_head()

    def _evict_a_slow_head(self) -> bool:
        waiting = self._waiting()
        for oldest in waiting:
            if oldest is not self:
                waiting.pop(oldest)
                oldest._close_slow_head()
                return True
        return False

    def _await_head(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            timeout, _ = _limits()
            self._head_timer = self.loop.call_later(timeout, self._close_slow_head)
            self._waiting()[self] = None

    def _head_done(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._waiting().pop(self, None)

    def _close_slow_head(self) -> None:
        self._head_done()
        if not self.transport.is_closing():
            self.transport.abort()

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_head()  # the next request's head, on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)
