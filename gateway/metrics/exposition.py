"""Render metrics for a scrape: this process's registry, or every worker's in multiprocess mode."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

__all__ = ["CONTENT_TYPE_LATEST", "render"]


def render(registry: CollectorRegistry, multiprocess_dir: str | None) -> bytes:
    if multiprocess_dir:
        # A fresh registry per scrape reads every worker's files (live and dead) and sums them.
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(combined)
    return generate_latest(registry)


def worker_exiting(multiprocess_dir: str | None, pid: int) -> None:
    """Drop this worker's live gauges (in-flight requests and the like) from the shared directory, so
    a restarted or stopped worker does not leave its last values behind in the sums."""
    if multiprocess_dir:
        multiprocess.mark_process_dead(pid, path=multiprocess_dir)  # type: ignore[no-untyped-call]
