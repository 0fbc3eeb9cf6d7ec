"""Live statistics per deployment: EWMAs of time to first token, latency and output speed, error rate.

``LiveStats`` is the mutable recorder the executor feeds; ``snapshot()`` hands the engine an immutable
view, so the engine stays a pure function. Recording is O(1) and allocation-free on the hot path; the
snapshot is rebuilt at most every ``snapshot_interval`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeploymentStats:
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    latency_ms: float | None = None
    error_rate: float = 0.0
    in_flight: int = 0
    healthy: bool = True
    samples: int = 0


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
        self._remote: dict[str, dict[str, float]] = {}
        self._snapshot_at = 0.0
        self._dirty = True

    def _get(self, deployment: str) -> _Running:
        r = self._running.get(deployment)
        if r is None:
            r = self._running[deployment] = _Running()
        return r

    def started(self, deployment: str) -> None:
        self._get(deployment).in_flight += 1
        self._dirty = True

    def finished(self, deployment: str) -> None:
        r = self._get(deployment)
        r.in_flight = max(0, r.in_flight - 1)
        self._dirty = True

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
            self._snapshot_at = 0.0  # breaker changes must reach the engine at once

    def merge_remote(self, merged: dict[str, dict[str, float]]) -> None:
        """Statistics of every replica (this one included), averaged by samples: with them, replicas
        rank deployments alike. A breaker open in most replicas counts as unhealthy here too."""
        self._remote = merged
        self._dirty = True
        self._snapshot_at = 0.0

    def snapshot(self, now: float | None = None) -> Mapping[str, DeploymentStats]:
        now = time.monotonic() if now is None else now
        if self._dirty and now - self._snapshot_at >= self._interval:
            names = self._running.keys() | self._health.keys() | self._remote.keys()
            self._snapshot = {name: self._combined(name, self._running.get(name) or _Running()) for name in names}
            self._snapshot_at = now
            self._dirty = False
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

    def export(self) -> dict[str, dict[str, float | int | None]]:
        """Plain values, for sharing through Redis and for the admin view."""
        return {
            n: {"ttft_ms": r.ttft_ms, "tokens_per_second": r.tps, "latency_ms": r.latency_ms,
                "error_rate": r.error_rate, "samples": r.samples}
            for n, r in self._running.items()
        }
