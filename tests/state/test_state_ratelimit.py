"""Rate limits: sliding-window arithmetic, headers, refusals, reconcile, and exactness under concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.core.errors import RateLimited
from gateway.policy.models import RateLimit
from gateway.state import window
from gateway.state.backend import StateBackend
from gateway.state.memory import MemoryBackend
from gateway.state.ratelimit import RateLimiter, RateLimitExceeded, RateTicket
from tests.state_support import redis_backend

W = 60_000
T0 = 1_700_000_040.0  # a window boundary: 1_700_000_040_000 ms is a multiple of 60_000


# ---- pure arithmetic


@pytest.mark.parametrize(
    ("previous", "current", "cost", "limit", "elapsed", "expected"),
    [
        (0, 0, 1, 1, 0, True),
        (0, 1, 1, 1, 0, False),
        (10, 0, 1, 10, 0, False),        # the whole previous window still counts at its start
        (10, 0, 1, 10, 6_000, True),     # 10% slid out: 9 + 1 <= 10
        (10, 5, 1, 10, 30_000, False),   # 5 + 5 + 1 > 10
        (10, 4, 1, 10, 30_000, True),
        (0, 0, 11, 10, 0, False),
        (0, 10, 0, 10, 0, True),
    ],
)
def test_fits(previous: int, current: int, cost: int, limit: int, elapsed: int, expected: bool) -> None:
    assert window.fits(previous, current, cost, limit, elapsed, W) is expected


@pytest.mark.parametrize(
    ("previous", "current", "cost", "limit", "elapsed", "expected"),
    [
        (0, 0, 1, 10, 0, 0),
        (0, 10, 1, 10, 15_000, 45_000 + 6_000),   # next window, 10% of this one slid out
        (10, 0, 1, 10, 0, 6_000),                 # 6 s later 10% of the previous window is gone
        (10, 5, 1, 10, 30_000, 6_000),            # 5 + 5 now; at 36 s only 4 of the previous window count
        (0, 0, 11, 10, 0, None),
        (20, 10, 1, 10, 0, 60_000 + 6_000),
    ],
)
def test_retry_after(previous: int, current: int, cost: int, limit: int, elapsed: int, expected: int | None) -> None:
    wait = window.retry_after_ms(previous, current, cost, limit, elapsed, W)
    assert wait == expected
    if expected is not None and expected > 0:
        # The wait is the shortest one: it fits then, and did not 1 ms earlier.
        def state_after(t: int) -> tuple[int, int, int]:
            e = elapsed + t
            if e < W:
                return previous, current, e
            if e < 2 * W:
                return current, 0, e - W
            return 0, 0, e - 2 * W
        p, c, e = state_after(expected)
        assert window.fits(p, c, cost, limit, e, W)
        p, c, e = state_after(expected - 1)
        assert not window.fits(p, c, cost, limit, e, W)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (17, "17ms"), (999, "999ms"), (1000, "1s"), (1500, "1.5s"), (12_000, "12s"), (59_999, "59.999s"),
     (60_000, "1m0s"), (90_500, "1m30.5s"), (360_000, "6m0s"), (3_723_000, "1h2m3s")],
)
def test_format_duration_like_openai(ms: int, text: str) -> None:
    assert window.format_duration(ms) == text


def test_reset_and_remaining() -> None:
    assert window.reset_ms(0, 0, 1000, W) == 0
    assert window.reset_ms(5, 0, 1000, W) == 59_000
    assert window.reset_ms(5, 3, 1000, W) == 119_000
    assert window.remaining(10, 2, 20, 30_000, W) == 13


# ---- the limiter, on both backends, with a controlled clock


class Clock:
    def __init__(self, start: float = T0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def ms(self) -> int:
        return int(self.now * 1000)


@pytest.fixture(params=["memory", "redis"])
async def clocked(request: pytest.FixtureRequest) -> AsyncIterator[tuple[StateBackend, Clock]]:
    clock = Clock()
    if request.param == "memory":
        yield MemoryBackend(clock=clock), clock
    else:
        async with redis_backend(clock_ms=clock.ms) as backend:
            yield backend, clock


async def test_requests_per_minute_with_headers(clocked: tuple[StateBackend, Clock]) -> None:
    backend, clock = clocked
    limiter = RateLimiter(backend)
    rl = RateLimit(requests_per_minute=3)
    clock.now += 15  # 15 s into the window
    for left in (2, 1, 0):
        ticket = await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=10)
        assert ticket.headers == {
            "x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": str(left),
            "x-ratelimit-reset-requests": "1m45s",
        }
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=10)
    err = caught.value
    assert isinstance(err, RateLimitExceeded)
    assert (err.status, err.type, err.scope, err.code) == (429, "requests", "key", "rate_limit_exceeded")
    # 3 in this window: the next window starts in 45 s and one request fits once a third of it has passed.
    assert err.headers["retry-after-ms"] == str(45_000 + 20_000)
    assert err.headers["retry-after"] == "65"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert "Limit 3, Used 3, Requested 1" in err.message
    clock.now += 65
    await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=10)


async def test_window_slides_instead_of_resetting(clocked: tuple[StateBackend, Clock]) -> None:
    backend, clock = clocked
    limiter = RateLimiter(backend)
    rl = RateLimit(requests_per_minute=10)
    clock.now += 59
    for _ in range(10):
        await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=0)
    clock.now += 2  # a fixed window would allow 10 more now
    with pytest.raises(RateLimitExceeded):
        await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=0)
    clock.now += 30  # 31 s into the window, 10 * 29/60 = 4.83 of the previous window still counts
    admitted = 0
    for _ in range(10):
        try:
            await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=0)
            admitted += 1
        except RateLimitExceeded:
            pass
    assert admitted == 5  # 4.83 + 5 <= 10 < 4.83 + 6


async def test_tokens_charged_up_front_then_reconciled(clocked: tuple[StateBackend, Clock]) -> None:
    backend, _ = clocked
    limiter = RateLimiter(backend)
    rl = RateLimit(tokens_per_minute=1000)
    ticket = await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=800)
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "200"
    with pytest.raises(RateLimitExceeded) as caught:
        await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=300)
    assert caught.value.type == "tokens"
    await limiter.reconcile(ticket, actual_tokens=150)  # the answer was short
    ticket2 = await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=300)
    assert ticket2.headers["x-ratelimit-remaining-tokens"] == "550"
    await limiter.reconcile(ticket2, actual_tokens=2000)  # and this one long: above the limit now
    with pytest.raises(RateLimitExceeded):
        await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=0)


async def test_request_larger_than_the_limit_never_fits(clocked: tuple[StateBackend, Clock]) -> None:
    limiter = RateLimiter(clocked[0])
    with pytest.raises(RateLimitExceeded) as caught:
        await limiter.acquire(key="k", team="t", key_limit=RateLimit(tokens_per_minute=100), team_limit=None, tokens=101)
    assert "retry-after" not in caught.value.headers and "never" in caught.value.message


async def test_team_refusal_takes_nothing_from_the_key(clocked: tuple[StateBackend, Clock]) -> None:
    limiter = RateLimiter(clocked[0])
    key_rl = RateLimit(requests_per_minute=5, tokens_per_minute=10_000)
    team_rl = RateLimit(requests_per_minute=2)
    for _ in range(2):
        ticket = await limiter.acquire(key="a", team="t", key_limit=key_rl, team_limit=team_rl, tokens=100)
    # Headers report the tighter bucket of each kind.
    assert ticket.headers["x-ratelimit-limit-requests"] == "2"
    assert ticket.headers["x-ratelimit-remaining-requests"] == "0"
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "9800"
    for _ in range(3):
        with pytest.raises(RateLimitExceeded) as caught:
            await limiter.acquire(key="a", team="t", key_limit=key_rl, team_limit=team_rl, tokens=100)
        assert caught.value.scope == "team"
    # The key's own buckets lost nothing to the refusals: checked without the team's limit, it has
    # 5 - 2 - 1 requests and 10,000 - 3 x 100 tokens left.
    ticket = await limiter.acquire(key="a", team="t", key_limit=key_rl, team_limit=None, tokens=100)
    assert ticket.headers["x-ratelimit-remaining-requests"] == "2"
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "9700"


async def test_no_limits_means_no_backend_call() -> None:
    class Exploding(MemoryBackend):
        async def rate_consume(self, *args: object, **kw: object):  # type: ignore[no-untyped-def, override]
            raise AssertionError("called")

    ticket = await RateLimiter(Exploding()).acquire(key="k", team="t", key_limit=None, team_limit=RateLimit(), tokens=5)
    assert ticket.headers == {} and not ticket.degraded


async def test_memory_and_redis_agree_step_by_step() -> None:
    """The Lua script and the Python backend implement the same rule: same inputs, same answers."""
    mem_clock, redis_clock = Clock(), Clock()
    memory = RateLimiter(MemoryBackend(clock=mem_clock))
    rl = RateLimit(requests_per_minute=7, tokens_per_minute=900)
    async with redis_backend(clock_ms=redis_clock.ms) as backend:
        shared = RateLimiter(backend)
        for step in range(120):
            for clock in (mem_clock, redis_clock):
                clock.now = T0 + step * 1.7
            results = []
            for limiter in (memory, shared):
                try:
                    ticket = await limiter.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=50 + step % 7 * 20)
                    results.append(("ok", ticket.headers))
                except RateLimitExceeded as exc:
                    results.append(("refused", exc.headers))
            assert results[0] == results[1], f"step {step}"


# ---- concurrency against the real Redis


async def _away_from_window_edge() -> None:
    """Server-clock tests must not straddle a window boundary, where the previous window starts to count."""
    into = time.time() * 1000 % W
    if into > W - 2_000:
        await asyncio.sleep((W - into) / 1000 + 0.05)


async def _admitted(limiters: list[RateLimiter], n: int, acquire: Callable[[RateLimiter], Awaitable[RateTicket]]) -> int:
    """How many of ``n`` concurrent requests were admitted; none may have been let in by failing open."""

    async def one(i: int) -> bool:
        try:
            ticket = await acquire(limiters[i % len(limiters)])
        except RateLimitExceeded:
            return False
        assert not ticket.degraded
        return True

    return sum(await asyncio.gather(*(one(i) for i in range(n))))


# These tests check atomicity, not latency: a generous timeout keeps a loaded CI machine from turning
# slow calls into fail-open admissions (timeouts have their own tests in test_state_failure.py).
SLOW_OK = {"timeout": 5.0}


async def test_exactly_the_limit_is_admitted_across_two_processes() -> None:
    """200 concurrent requests, two backends with their own connection pools, one limit of 50/min."""
    async with redis_backend(**SLOW_OK) as first, redis_backend(prefix=first.prefix, **SLOW_OK) as second:
        limiters = [RateLimiter(first), RateLimiter(second)]
        await _away_from_window_edge()
        rl = RateLimit(requests_per_minute=50)
        admitted = await _admitted(
            limiters, 200, lambda lim: lim.acquire(key="k", team="t", key_limit=rl, team_limit=None, tokens=0)
        )
        assert admitted == 50


async def test_tokens_exact_under_concurrency_across_two_processes() -> None:
    async with redis_backend(**SLOW_OK) as first, redis_backend(prefix=first.prefix, **SLOW_OK) as second:
        limiters = [RateLimiter(first), RateLimiter(second)]
        await _away_from_window_edge()
        key_rl, team_rl = RateLimit(requests_per_minute=1000, tokens_per_minute=10_000), RateLimit(tokens_per_minute=7_000)
        admitted = await _admitted(
            limiters, 300, lambda lim: lim.acquire(key="k", team="t", key_limit=key_rl, team_limit=team_rl, tokens=100)
        )
        assert admitted == 70
        raw = await first._redis.keys(f"{first.prefix}rl:*")
        counts = {k.decode().split(":rl:")[1].rsplit(":", 1)[0]: int(await first._redis.get(k)) for k in raw}
        assert counts == {"{t}key:k:requests": 70, "{t}key:k:tokens": 7000, "{t}team:t:tokens": 7000}
