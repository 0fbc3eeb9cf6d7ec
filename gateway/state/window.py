"""Sliding-window counter arithmetic, pure and shared by both backends and the limiter.

A bucket keeps one counter per fixed window (``time // window``). Its usage at a moment ``elapsed``
into the current window is the previous window's count weighted by the part of it still inside the
sliding window, plus the current count::

    used = previous * (W - elapsed) / W + current

A charge of ``cost`` is admitted when ``used + cost <= limit``. The comparison is done on integers
(multiplied through by ``W``) so Lua doubles in Redis and Python ints give the same answer.

This is Cloudflare's approximation of a true sliding log: constant memory per bucket, no burst of
twice the limit at a window boundary, and exact at a cold start (the concurrency tests rely on
that: N concurrent requests against a fresh limit L admit exactly min(N, L)).
"""

from __future__ import annotations

import math


def fits(previous: int, current: int, cost: int, limit: int, elapsed_ms: int, window_ms: int) -> bool:
    """Whether ``cost`` more units stay within ``limit``. Mirrors the test in ``scripts.RATE_CONSUME``."""
    return previous * (window_ms - elapsed_ms) + (current + cost) * window_ms <= limit * window_ms


def used(previous: int, current: int, elapsed_ms: int, window_ms: int) -> float:
    return previous * (window_ms - elapsed_ms) / window_ms + current


def remaining(previous: int, current: int, limit: int, elapsed_ms: int, window_ms: int) -> int:
    return max(0, math.floor(limit - used(previous, current, elapsed_ms, window_ms)))


def reset_ms(previous: int, current: int, elapsed_ms: int, window_ms: int) -> int:
    """Time until the bucket is back to its full limit (all counted usage has slid out)."""
    if current > 0:
        return 2 * window_ms - elapsed_ms
    if previous > 0:
        return window_ms - elapsed_ms
    return 0


def retry_after_ms(previous: int, current: int, cost: int, limit: int, elapsed_ms: int, window_ms: int) -> int | None:
    """Shortest wait after which ``cost`` would fit, or ``None`` if it never can (``cost > limit``)."""
    if cost > limit:
        return None
    w, e = window_ms, elapsed_ms
    if fits(previous, current, cost, limit, e, w):
        return 0
    # Later in this window: previous keeps sliding out, current stays.
    slack = limit - current - cost
    if slack >= 0 and previous > 0:
        at = w - (slack * w) // previous  # smallest elapsed with previous*(w-at) <= slack*w
        if at < w:
            return max(0, at - e)
    # In the next window, this window's count becomes "previous" and starts sliding out.
    if current == 0:
        return w - e
    slack_next = limit - cost
    at_next = max(0, w - (slack_next * w) // current)
    if at_next < w:
        return (w - e) + at_next
    return 2 * w - e


def format_duration(ms: int) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers write it: ``120ms``, ``12s``, ``1.5s``, ``6m0s``."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds
