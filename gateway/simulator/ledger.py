"""What the simulator has seen: request counts per model and path, and the counters faults use.

Served at ``GET /sim/stats`` and cleared by ``POST /sim/reset``, so tests can check which upstream got
which request and restart ``fail_first``/``flaky`` sequences.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any


class Ledger:
    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        self._total = 0
        self._by_model: Counter[str] = Counter()
        self._by_path: Counter[str] = Counter()
        self._by_model_path: dict[str, Counter[str]] = {}
        self._faults: Counter[str] = Counter()
        self._last: dict[str, dict[str, Any]] = {}
        self._fail_first_seen: Counter[str] = Counter()
        self._flaky_draws: dict[str, random.Random] = {}

    def record(self, model: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> None:
        """Count one request; ``headers``/``body`` are kept as the model's last request."""
        self._total += 1
        self._by_path[path] += 1
        if model:
            self._by_model[model] += 1
            paths = self._by_model_path.get(model)
            if paths is None:
                paths = self._by_model_path[model] = Counter()
            paths[path] += 1
            self._last[model] = {"path": path, "headers": headers or {}, "body": body}

    def record_fault(self, kind: str) -> None:
        self._faults[kind] += 1

    def fail_first_fires(self, model: str, first: int) -> bool:
        """True for the first ``first`` requests of ``model`` carrying ``fail_first`` since the last reset."""
        self._fail_first_seen[model] += 1
        return self._fail_first_seen[model] <= first

    def flaky_fires(self, model: str, probability: float) -> bool:
        """A seeded draw per model: the same sequence of outcomes after every reset."""
        rng = self._flaky_draws.get(model)
        if rng is None:
            rng = self._flaky_draws[model] = random.Random(f"{self._seed}:{model}")
        return rng.random() < probability

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self._total,
            "by_model": dict(self._by_model),
            "by_path": dict(self._by_path),
            "by_model_path": {model: dict(paths) for model, paths in self._by_model_path.items()},
            "faults": dict(self._faults),
            "last_request": self._last,
        }
