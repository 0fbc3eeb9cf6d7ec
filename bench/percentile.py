"""The nearest-rank percentile the small benchmark scripts report (run as ``python bench/<script>.py``,
so this module is importable from them as ``percentile``)."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
