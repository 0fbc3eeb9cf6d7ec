"""Live statistics shared between gateway processes, so every replica routes on the same picture.

Each process publishes, every couple of seconds, its ``LiveStats.export()`` (per deployment:
``ttft_ms``, ``tokens_per_second``, ``latency_ms``, ``error_rate``, and ``samples`` when present)
and the deployments whose circuit breaker is open, as one field of a Redis hash stamped with the
server's time. ``fetch`` merges the fresh fields of every process (stale ones, from processes that
stopped publishing for ``ttl_s``, are deleted): each number is the mean over processes weighted by
their ``samples`` (1 when absent), ignoring processes that have no value (absent when none has
one); ``samples`` is summed; ``breaker_open`` counts the processes whose breaker for that deployment
is open, ``processes`` the processes reporting it. ``load`` (a self-hosted server's report of its own
queue, polled by one process for all) is not averaged: the freshest report (highest ``at``) wins.
``members()`` names the processes seen by the last fetch. Both calls never raise: on a backend failure publish returns False and
fetch returns ``{}``.

Typical use, from a background task of the composition root::

    while True:
        await shared.publish(runtime.stats.export(), open_breakers)
        merged = await shared.fetch()
        await asyncio.sleep(2)
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from gateway.state.backend import StateBackend
from gateway.state.errors import BackendUnavailable

Export = Mapping[str, Mapping[str, float | int | None]]


class SharedStats:
    def __init__(self, backend: StateBackend, *, process_id: str | None = None, ttl_s: float = 10.0) -> None:
        self._backend = backend
        self.process_id = process_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._ttl_ms = int(ttl_s * 1000)
        self._members: tuple[str, ...] = ()

    def members(self) -> tuple[str, ...]:
        """Processes that published within the TTL, as of the last ``fetch`` (empty before one)."""
        return self._members

    async def publish(self, export: Export, breakers_open: Iterable[str] = ()) -> bool:
        payload = orjson.dumps({"deployments": export, "open": sorted(breakers_open)})
        try:
            await self._backend.stats_publish(self.process_id, payload, self._ttl_ms)
        except BackendUnavailable:
            return False
        return True

    async def fetch(self, *, include_self: bool = True) -> dict[str, dict[str, Any]]:
        try:
            raw = await self._backend.stats_fetch(self._ttl_ms)
        except BackendUnavailable:
            return {}
        self._members = tuple(sorted(raw))
        reports = []
        for member, payload in raw.items():
            if member == self.process_id and not include_self:
                continue
            try:
                reports.append(orjson.loads(payload))
            except orjson.JSONDecodeError:
                continue
        return merge(reports)


def merge(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Combine per-process reports ``{"deployments": export, "open": [names]}`` as described above."""
    sums: dict[str, dict[str, list[float]]] = {}
    merged: dict[str, dict[str, Any]] = {}
    for report in reports:
        for name, stats in (report.get("deployments") or {}).items():
            out = merged.setdefault(name, {"samples": 0, "processes": 0, "breaker_open": 0})
            out["processes"] += 1
            samples = stats.get("samples")
            weight = float(samples) if isinstance(samples, int | float) and samples > 0 else 1.0
            out["samples"] += int(samples) if isinstance(samples, int | float) else 0
            load = stats.get("load")
            if isinstance(load, dict) and isinstance(load.get("at"), int | float):
                if not isinstance(out.get("load"), dict) or load["at"] > out["load"]["at"]:
                    out["load"] = load
            for field, value in stats.items():
                if field != "samples" and isinstance(value, int | float):
                    acc = sums.setdefault(name, {}).setdefault(field, [0.0, 0.0])
                    acc[0] += weight * value
                    acc[1] += weight
        for name in report.get("open") or ():
            merged.setdefault(name, {"samples": 0, "processes": 0, "breaker_open": 0})["breaker_open"] += 1
    for name, fields in sums.items():
        for field, (total, weight) in fields.items():
            merged[name][field] = total / weight
    return merged
