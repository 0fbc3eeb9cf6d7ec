"""Poll the load sources of self-hosted deployments and record what the servers say into ``LiveStats``.

One task per deployment with a ``load_source``, every ``interval_seconds``: GET the page, read it
(``server_load.read_page``), ``stats.record_load``. llama-server's slot count comes from its ``/props``
(``total_slots``), read once; when its /metrics has no KV-cache gauge (current builds), its ``/slots``
page gives the context in use (one more GET per poll; skipped if the server disables that page). A failed poll is logged once per streak; once the last good reading is
older than ``max_age_seconds`` it is dropped, and the engine plans as if the server were idle again
(breakers and timeouts still guard it).

With several replicas sharing statistics, each server is polled by one of them: the owner is chosen
by rendezvous hashing over the live processes (``owns``, set by ``sharing.SharedStatsLoop``), and the
readings reach the others through the shared statistics. When the owner stops publishing, its share
moves to another process within the shared statistics' TTL. Without sharing, every process polls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.core.errors import UpstreamError, UpstreamTimeout
from gateway.policy.models import Deployment, LoadSource
from gateway.providers.egress import EgressSettings
from gateway.providers.registry import DEFAULT_API_BASES
from gateway.providers.transport import Transport, TransportSettings
from gateway.routing.server_load import (
    LoadPageError,
    ServerLoad,
    kv_usage_from_slots,
    read_page,
    total_slots_from_props,
)
from gateway.routing.stats import DeploymentStats, LiveStats

log = logging.getLogger("gateway.load")

ReadingHook = Callable[[str, ServerLoad | None, DeploymentStats | None], None]
"""Called every interval per deployment with the server's fresh reading (``None`` when there is none)
and the gateway's own statistics of it: the metrics show both side by side."""
_PAGE_LIMIT = 4 * 1024 * 1024  # a /metrics page of a busy vLLM is ~100 KiB; refuse absurd ones


class LoadPollError(Exception):
    """The load source could not be read (connection, status, timeout or page)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class SourceAddress:
    origin: str
    """``scheme://host:port``"""
    path: str
    props_path: str | None
    """llama-server's ``/props`` (slot count), for the ``llamacpp`` type."""
    slots_path: str | None
    """llama-server's ``/slots`` (context in use), for the ``llamacpp`` type."""


def source_address(dep: Deployment) -> SourceAddress:
    """Where to poll: ``load_source.url``, else the server root of ``api_base`` plus the type's page."""
    source = dep.load_source
    assert source is not None
    base = (dep.api_base or DEFAULT_API_BASES.get(dep.type) or "").rstrip("/")
    root = base.removesuffix("/v1")
    url = source.url or root + ("/slots" if source.type == "llamacpp_slots" else "/metrics")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"deployment {dep.name!r}: load source URL {url!r} is not an http(s) URL")
    origin = f"{parts.scheme}://{parts.netloc}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    props = slots = None
    if source.type == "llamacpp":
        root_path = urlsplit(root).path if root else ""
        prefix = root_path if urlsplit(root).netloc == parts.netloc else ""
        props, slots = prefix + "/props", prefix + "/slots"
    return SourceAddress(origin, path, props, slots)


class _Source:
    """One deployment's load source: its connection pool and what was learnt from it."""

    def __init__(self, dep: Deployment) -> None:
        assert dep.load_source is not None
        self.deployment = dep
        self.config: LoadSource = dep.load_source
        self.address = source_address(dep)
        headers = {"authorization": f"Bearer {dep.api_key}"} if dep.api_key else {}
        # The deployment's own egress (proxy, company CA, client certificate) reaches its load page too.
        self.pool = Transport(
            self.address.origin, headers=headers, egress=EgressSettings.from_policy(dep.egress),
            settings=TransportSettings(connect_timeout=2.0, max_connections=4), name=dep.name,
            log_failures=False,  # a failed poll is logged once per streak, by the poller
        )
        self.slots: int | None = self.config.slots
        self.slots_page = self.address.slots_path is not None
        self.failing = False

    async def get(self, path: str, limit_s: float) -> bytes:
        try:
            async with asyncio.timeout(limit_s):
                resp = await self.pool.send("GET", path, head_timeout=limit_s)
                try:
                    body = await resp.read_all(_PAGE_LIMIT)  # refused as it arrives, never held whole
                finally:
                    await resp.aclose()  # a half-read answer drops its connection
        except (TimeoutError, UpstreamTimeout) as exc:
            raise LoadPollError(f"no answer within {limit_s:g}s") from exc
        except UpstreamError as exc:
            if "max_response_bytes" in exc.message:
                raise LoadPollError(f"the page is larger than {_PAGE_LIMIT} bytes") from exc
            raise LoadPollError(f"cannot read {path}: {type(exc.__cause__ or exc).__name__}") from exc
        if resp.status != 200:
            raise LoadPollError(f"{path} answered {resp.status}", status=resp.status)
        return body

    async def read(self, clock: Callable[[], float]) -> ServerLoad:
        timeout = max(0.2, min(2.0, self.config.interval_seconds * 2))
        if self.slots is None and self.address.props_path is not None:
            try:
                self.slots = total_slots_from_props(await self.get(self.address.props_path, timeout))
            except LoadPollError:
                pass  # the queue is still readable without the slot count; try /props again next time
        body = await self.get(self.address.path, timeout)
        try:
            load = read_page(self.config.type, body, clock(), self.slots)
        except LoadPageError as exc:
            raise LoadPollError(str(exc)) from exc
        if load.kv_cache_usage is None and self.slots_page and self.address.slots_path is not None:
            try:
                kv = kv_usage_from_slots(await self.get(self.address.slots_path, timeout))
            except LoadPollError as exc:
                if exc.status is not None:
                    self.slots_page = False  # e.g. started with --no-slots (501): the queue is what matters
            except LoadPageError:
                self.slots_page = False
            else:
                load = dataclasses.replace(load, kv_cache_usage=kv)
        return load


class LoadPoller:
    def __init__(self, stats: LiveStats, on_reading: ReadingHook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._stats = stats
        self._on_reading = on_reading
        self._clock = clock
        self._sources: dict[str, _Source] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.owns: Callable[[str], bool] = lambda name: True
        """Whether this process polls the named deployment's server (replaced when replicas share stats)."""

    @property
    def deployments(self) -> tuple[str, ...]:
        return tuple(self._sources)

    def restart(self, deployments: Mapping[str, Deployment]) -> None:
        """(Re)start polling for the deployments that name a load source; stop the others."""
        self.stop()
        old = self._sources
        self._sources = {}
        for name, dep in deployments.items():
            if dep.load_source is None:
                continue
            previous = old.pop(name, None)
            if previous is not None and previous.deployment == dep:
                self._sources[name] = previous
            else:
                if previous is not None:
                    self._close_later(previous)
                self._sources[name] = _Source(dep)
            self._stats.track_load(name, dep.load_source.max_age_seconds)
        for name, gone in old.items():
            self._stats.untrack_load(name)
            self._close_later(gone)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet (start-up): the app calls restart again from its lifespan
        for name, source in self._sources.items():
            self._tasks[name] = loop.create_task(self._loop(name, source))

    async def poll(self, name: str) -> ServerLoad | None:
        """Read one deployment's load source now and record the reading; ``None`` when it failed."""
        source = self._sources[name]
        # The baseline for counting this process's calls between polls: those in flight as the server is
        # asked (calls started while the answer travels are not in it, and are added on top).
        before = self._stats.in_flight(name)
        try:
            load = await source.read(self._clock)
        except LoadPollError as exc:
            if not source.failing:
                log.warning("load source of deployment %s cannot be read: %s", name, exc)
            source.failing = True
            last = self._stats.load_reading(name)
            if last is not None and self._clock() - last.at > source.config.max_age_seconds:
                self._stats.forget_load(name)
            return None
        if source.failing:
            log.info("load source of deployment %s answers again", name)
        source.failing = False
        self._stats.record_load(name, load, in_flight_then=before)
        return load

    async def _loop(self, name: str, source: _Source) -> None:
        while True:
            if self.owns(name):
                await self.poll(name)
            if self._on_reading is not None:
                estimate = self._stats.server_estimate(name)  # this process's poll, or another replica's
                self._on_reading(name, estimate[0] if estimate is not None else None, self._stats.snapshot().get(name))
            await asyncio.sleep(source.config.interval_seconds)

    def _close_later(self, source: _Source) -> None:
        try:
            asyncio.get_running_loop().create_task(source.pool.aclose())
        except RuntimeError:
            pass  # no loop: nothing was ever connected

    def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def aclose(self) -> None:
        self.stop()
        for source in self._sources.values():
            await source.pool.aclose()
