"""Live statistics per deployment: EWMAs of time to first token, latency and output speed, error rate,
and the load self-hosted servers report about themselves.

``LiveStats`` is the mutable recorder the executor feeds; ``snapshot()`` hands the engine an immutable
view, so the engine stays a pure function. Recording is O(1) and allocation-free on the hot path; the
snapshot is rebuilt at most every ``snapshot_interval`` seconds — except for deployments with a load
reading, whose snapshot follows every call this process starts or ends: between two polls, the server's
load is estimated as its last reading plus the calls this process started since, minus those it ended.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.routing.server_load import ServerLoad


@dataclass(frozen=True, slots=True)
class DeploymentStats:
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    latency_ms: float | None = None
    error_rate: float = 0.0
    in_flight: int = 0
    healthy: bool = True
    samples: int = 0
    server: ServerLoad | None = None
    """The server's last fresh report of its own load (self-hosted deployments with a load source)."""
    server_busy: float = 0.0
    """Requests on the server now, estimated: the report plus this process's calls started since, minus ended."""


@dataclass(frozen=True, slots=True)
class _Reading:
    load: ServerLoad
    in_flight_then: int
    """This process's calls in flight when the reading was taken (or received)."""
    max_age_s: float
    own: bool
    """Polled by this process (published to the other replicas) rather than received from one."""


class _Running:
    __slots__ = ("ttft_ms", "tps", "latency_ms", "error_rate", "in_flight", "samples")

    def __init__(self) -> None:
        self.ttft_ms: float | None = None
        self.tps: float | None = None
        self.latency_ms: float | None = None
        self.error_rate = 0.0
        self.in_flight = 0
        self.samples = 0


def _ewma(old: float | None, new: float, alpha: float) -> float:
    return new if old is None else old + alpha * (new - old)


class LiveStats:
    def __init__(self, alpha: float = 0.2, snapshot_interval: float = 0.25) -> None:
        self._alpha = alpha
        self._interval = snapshot_interval
        self._running: dict[str, _Running] = {}
        self._health: dict[str, bool] = {}
        self._snapshot: dict[str, DeploymentStats] = {}
        self._remote: Mapping[str, Mapping[str, Any]] = {}
        self._readings: dict[str, _Reading] = {}
        self._load_max_age: dict[str, float] = {}
        self._snapshot_at = 0.0
        self._dirty = True
        self._urgent = True  # rebuild at the next snapshot, whatever the interval

    def _get(self, deployment: str) -> _Running:
        r = self._running.get(deployment)
        if r is None:
            r = self._running[deployment] = _Running()
        return r

    def started(self, deployment: str) -> None:
        self._get(deployment).in_flight += 1
        self._dirty = True
        if deployment in self._readings:
            self._urgent = True  # the server's estimated load changed: the next decision must see it

    def finished(self, deployment: str) -> None:
        r = self._get(deployment)
        r.in_flight = max(0, r.in_flight - 1)
        self._dirty = True
        if deployment in self._readings:
            self._urgent = True

    def track_load(self, deployment: str, max_age_s: float) -> None:
        """The deployment has a load source: accept its readings (also other replicas')."""
        self._load_max_age[deployment] = max_age_s

    def untrack_load(self, deployment: str) -> None:
        self._load_max_age.pop(deployment, None)
        self.forget_load(deployment)

    def in_flight(self, deployment: str) -> int:
        r = self._running.get(deployment)
        return r.in_flight if r is not None else 0

    def record_load(self, deployment: str, load: ServerLoad, *, own: bool = True,
                    in_flight_then: int | None = None) -> None:
        """A server's report of its own load (from this process's poll, or another replica's).
        ``in_flight_then``: this process's calls in flight when the server was asked (default: now)."""
        max_age = self._load_max_age.get(deployment)
        if max_age is None:
            return
        then = self.in_flight(deployment) if in_flight_then is None else in_flight_then
        self._readings[deployment] = _Reading(load, then, max_age, own)
        self._dirty = True
        self._urgent = True

    def forget_load(self, deployment: str) -> None:
        if self._readings.pop(deployment, None) is not None:
            self._dirty = True
            self._urgent = True

    def load_reading(self, deployment: str) -> ServerLoad | None:
        reading = self._readings.get(deployment)
        return reading.load if reading is not None else None

    def server_estimate(self, deployment: str, now_wall: float | None = None) -> tuple[ServerLoad, float] | None:
        """(fresh reading, requests estimated on the server now), read live rather than from the snapshot;
        ``None`` without a reading younger than its ``max_age``."""
        reading = self._readings.get(deployment)
        if reading is None:
            return None
        now_wall = time.time() if now_wall is None else now_wall
        if now_wall - reading.load.at > reading.max_age_s:
            return None
        in_flight = self.in_flight(deployment)
        busy = max(float(in_flight), reading.load.busy + in_flight - reading.in_flight_then)
        return reading.load, busy

    def record_success(
        self, deployment: str, latency_ms: float, ttft_ms: float | None = None, output_tokens: int = 0
    ) -> None:
        r = self._get(deployment)
        a = self._alpha
        r.latency_ms = _ewma(r.latency_ms, latency_ms, a)
        if ttft_ms is not None:
            r.ttft_ms = _ewma(r.ttft_ms, ttft_ms, a)
        generation_ms = latency_ms - (ttft_ms or 0.0)
        if output_tokens > 1 and generation_ms > 1:
            r.tps = _ewma(r.tps, output_tokens / (generation_ms / 1000), a)
        r.error_rate = _ewma(r.error_rate, 0.0, a)
        r.samples += 1
        self._dirty = True

    def record_failure(self, deployment: str) -> None:
        r = self._get(deployment)
        r.error_rate = _ewma(r.error_rate, 1.0, self._alpha)
        self._dirty = True

    def set_health(self, deployment: str, healthy: bool) -> None:
        if self._health.get(deployment, True) != healthy:
            self._health[deployment] = healthy
            self._dirty = True
            self._urgent = True  # breaker changes must reach the engine at once

    def merge_remote(self, merged: Mapping[str, Mapping[str, Any]]) -> None:
        """Statistics of every replica (this one included), averaged by samples: with them, replicas
        rank deployments alike. A breaker open in most replicas counts as unhealthy here too."""
        self._remote = merged
        for name, fields in merged.items():
            load = ServerLoad.from_dict(fields.get("load"))
            mine = self._readings.get(name)
            if load is not None and (mine is None or load.at > mine.load.at):
                self.record_load(name, load, own=False)
        self._dirty = True
        self._urgent = True

    def snapshot(self, now: float | None = None) -> Mapping[str, DeploymentStats]:
        now = time.monotonic() if now is None else now
        if self._dirty and (self._urgent or now - self._snapshot_at >= self._interval):
            names = self._running.keys() | self._health.keys() | self._remote.keys() | self._readings.keys()
            wall = time.time()
            self._snapshot = {name: self._with_server(name, self._combined(name, self._running.get(name) or _Running()), wall)
                              for name in names}
            self._snapshot_at = now
            self._dirty = self._urgent = False
        return self._snapshot

    def _combined(self, name: str, r: _Running) -> DeploymentStats:
        healthy = self._health.get(name, True)
        remote = self._remote.get(name)
        if not remote or remote.get("processes", 0) < 2:
            return DeploymentStats(ttft_ms=r.ttft_ms, tokens_per_second=r.tps, latency_ms=r.latency_ms,
                                   error_rate=r.error_rate, in_flight=r.in_flight, healthy=healthy, samples=r.samples)
        open_share = remote.get("breaker_open", 0) / remote["processes"]
        return DeploymentStats(
            ttft_ms=remote.get("ttft_ms", r.ttft_ms), tokens_per_second=remote.get("tokens_per_second", r.tps),
            latency_ms=remote.get("latency_ms", r.latency_ms), error_rate=remote.get("error_rate", r.error_rate),
            in_flight=r.in_flight, healthy=healthy and open_share <= 0.5, samples=int(remote.get("samples", r.samples)),
        )

    def _with_server(self, name: str, stats: DeploymentStats, wall: float) -> DeploymentStats:
        estimate = self.server_estimate(name, wall) if name in self._readings else None
        if estimate is None:
            return stats
        load, busy = estimate
        return DeploymentStats(
            ttft_ms=stats.ttft_ms, tokens_per_second=stats.tokens_per_second, latency_ms=stats.latency_ms,
            error_rate=stats.error_rate, in_flight=stats.in_flight, healthy=stats.healthy, samples=stats.samples,
            server=load, server_busy=busy,
        )

    def export(self) -> dict[str, dict[str, Any]]:
        """Plain values, for sharing through Redis and for the admin view. Server load readings this
        process polled itself go along (``load``); the freshest reading of each server wins the merge."""
        out: dict[str, dict[str, Any]] = {
            n: {"ttft_ms": r.ttft_ms, "tokens_per_second": r.tps, "latency_ms": r.latency_ms,
                "error_rate": r.error_rate, "samples": r.samples}
            for n, r in self._running.items()
        }
        for name, reading in self._readings.items():
            if reading.own:
                out.setdefault(name, {"samples": 0})["load"] = reading.load.to_dict()
        return out
