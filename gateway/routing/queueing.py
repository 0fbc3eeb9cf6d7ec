"""How long a request arriving now would wait for a slot on a self-hosted server. Pure arithmetic.

A server running ``slots`` requests at once, each taking ``service_ms`` on average, frees a slot every
``service_ms / slots`` on average. A request arriving behind ``ahead`` others that must start first
waits for ``ahead`` departures:

    ahead = busy - slots + 1          (busy = running + waiting, as estimated now)
    wait  = ahead * service_ms / slots, or 0 when ahead <= 0

This errs long (the first departure comes sooner than a full period when slots are spread out), which
is the safe side for a latency SLO. When the slot count is unknown, only a visible queue counts: a
server with waiting requests is full, so its running count is its capacity.
"""

from __future__ import annotations


def ahead_of_new_request(busy: float, slots: int | None, running: float, waiting: float) -> tuple[float, float]:
    """(requests that must start before a new one, the capacity they drain through)."""
    if slots:
        return busy - slots + 1, float(slots)
    if waiting > 0:
        capacity = max(running, 1.0)
        return busy - capacity + 1, capacity
    return 0.0, 1.0


def queue_wait_ms(busy: float, slots: int | None, service_ms: float, *, running: float | None = None,
                  waiting: float = 0.0) -> float:
    """Expected wait for a free slot; ``busy`` is the estimated number of requests on the server now."""
    ahead, capacity = ahead_of_new_request(busy, slots, busy if running is None else running, waiting)
    if ahead <= 0 or service_ms <= 0:
        return 0.0
    return ahead * service_ms / capacity
