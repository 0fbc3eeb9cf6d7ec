"""uvicorn's httptools protocol with what it lacks against slow clients.

uvicorn bounds the idle time between keep-alive requests, but not the time a client may take to send
a request head: a client that sends one header line every few seconds holds its connection (and a
file descriptor) for ever, and enough of them starve every tenant, health checks included. This
protocol adds, per process:

- a **head timeout** (``GATEWAY_HEADER_TIMEOUT``, 10 s): a request head — from the connection's first
  byte, or from the end of the previous response on a keep-alive connection — must be complete within
  it, or the connection is closed;
- a **connection cap** (``GATEWAY_MAX_CONNECTIONS``, never above half the open-files limit): a new
  connection beyond it closes the oldest connection that is still sending its request, head or body
  (a request being served is never cut for it); if every connection is busy with a request, the new
  one is closed instead.

Request bodies are bounded in time by the entrance (``GATEWAY_BODY_TIMEOUT``, a 408). Settings come
from the environment once per process, like the rest of a worker's settings.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings

log = logging.getLogger("gateway.server")


def raise_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


@functools.cache
def _settings() -> tuple[float, int]:
    settings = Settings.from_env()
    return settings.header_timeout, settings.max_connections


def _connection_cap() -> int:
    """``GATEWAY_MAX_CONNECTIONS``, but never more than half the open-files limit in force now, less a reserve:
    every streamed request holds a second descriptor upstream, and Redis and files need some too. Read on every new connection: a limit lowered while the
    process runs (``prlimit``, a container's) must not let clients take the last descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = soft if soft != resource.RLIM_INFINITY else 1 << 20
    return min(_settings()[1], max(16, files // 2 - 64))


class SlowClientGuardProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` plus a head timeout and a connection cap that evicts slow clients first.

    A connection is *receiving* from the moment it is made (or its previous response ended) until its
    request has fully arrived, head and body; a new connection over the cap evicts a receiving one. It
    picks, oldest first, a connection that has sent part of its request but not all of it (a client
    trickling its head or body), and only when there is none a connection that has sent nothing yet.
    A real client sends its head in one piece, so it is never in the first group: under a flood of
    trickling clients, it is the flood that is shed. A request being served is never cut for room."""

    _head_timer: asyncio.TimerHandle | None = None
    _stage: str | None = None  # "fresh": nothing received yet; "partial": part of the request received

    def _registry(self, stage: str) -> OrderedDict[SlowClientGuardProtocol, None]:
        state: Any = self.server_state
        registries: dict[str, OrderedDict[SlowClientGuardProtocol, None]] | None = getattr(
            state, "gateway_receiving", None)
        if registries is None:
            registries = state.gateway_receiving = {"fresh": OrderedDict(), "partial": OrderedDict()}
        return registries[stage]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = _connection_cap()
        while len(self.connections) > cap:
            if not self._evict_a_slow_client():
                log.warning("connection cap of %d reached with every connection busy: refusing a new one", cap)
                transport.close()
                return
        self._await_request()

    def _evict_a_slow_client(self) -> bool:
        for stage in ("partial", "fresh"):
            registry = self._registry(stage)
            for oldest in registry:
                if oldest is not self:
                    oldest._drop()
                    return True
        return False

    def _enter(self, stage: str | None) -> None:
        if self._stage is not None:
            self._registry(self._stage).pop(self, None)
        self._stage = stage
        if stage is not None:
            self._registry(stage)[self] = None

    def _await_request(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(_settings()[0], self._drop)
            self._enter("fresh")

    def _received(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._enter(None)

    def _drop(self) -> None:
        self._received()
        if not self.transport.is_closing():
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._stage == "fresh":
            self._enter("partial")  # left again at once when this data completes the request
        super().data_received(data)

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:  # the head is in; the body is bounded by the entrance's body timeout
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._received()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_request()  # the next request, on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._received()
        super().connection_lost(exc)
