"""Rate limits per API key and per team: requests per minute and tokens per minute.

One ``acquire`` per request checks up to four buckets (key and team, requests and tokens) in a single
atomic backend operation and takes from all of them or from none: a request refused by its team's
limit does not use up its key's. Tokens are charged up front with the request's estimate (prompt
tokens plus the output it may produce) and ``reconcile`` later replaces the estimate by the real count.

Windows slide (``window.py``): a bucket never admits more than its limit within any 60 s, and N
concurrent requests against a fresh limit L admit exactly min(N, L), across any number of processes
sharing one Redis.

The answer carries OpenAI's headers (``x-ratelimit-limit-requests``, ``-remaining-``, ``-reset-``,
and the same for tokens), reporting the tighter of the key and team buckets. A refusal raises
``RateLimitExceeded`` (a ``RateLimited``: 429, type ``requests`` or ``tokens``) with those headers
plus ``retry-after`` / ``retry-after-ms``. When the backend is unreachable the request is admitted
(``on_failure="open"``) or refused with ``StateUnavailable`` (``"closed"``), as the policy says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gateway.core.errors import RateLimited
from gateway.policy.models import RateLimit
from gateway.state import window as sliding
from gateway.state.backend import RateCharge, RateOutcome, StateBackend, WindowCount
from gateway.state.errors import BackendUnavailable, StateUnavailable
from gateway.state.write_behind import WriteBehind

Kind = Literal["requests", "tokens"]
Scope = Literal["key", "team"]
_UNITS = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


class RateLimitExceeded(RateLimited):
    """A rate limit refused the request. ``type`` is ``requests`` or ``tokens``; ``scope`` says whose limit."""

    def __init__(self, message: str, *, kind: Kind, scope: Scope, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.type = kind
        self.scope = scope


@dataclass(frozen=True, slots=True)
class _Check:
    kind: Kind
    scope: Scope
    name: str
    charge: RateCharge


@dataclass(frozen=True, slots=True)
class RateTicket:
    """An admitted request: headers for the response, and what ``reconcile`` needs later."""

    headers: dict[str, str]
    tokens: int = 0
    """Tokens charged up front."""
    token_buckets: tuple[str, ...] = ()
    window: int = 0
    degraded: bool = False
    """The limits could not be checked and the request was admitted anyway (fail open)."""


UNLIMITED = RateTicket(headers={})


class RateLimiter:
    def __init__(self, backend: StateBackend, *, window_s: int = 60) -> None:
        self._backend = backend
        self._window_ms = window_s * 1000
        self._corrections: WriteBehind[tuple[str, int, int]] = WriteBehind(self._send_corrections, delay=0.05)

    def reconcile_later(self, ticket: RateTicket, actual_tokens: int) -> None:
        """Like ``reconcile``, gathered with other requests' corrections into one round trip."""
        delta = actual_tokens - ticket.tokens
        if delta and ticket.token_buckets:
            for bucket in ticket.token_buckets:
                self._corrections.add((bucket, ticket.window, delta))

    async def _send_corrections(self, batch: list[tuple[str, int, int]]) -> None:
        merged: dict[tuple[str, int], int] = {}
        for bucket, window, delta in batch:
            merged[(bucket, window)] = merged.get((bucket, window), 0) + delta
        try:
            await self._backend.rate_adjust_many([(b, w, d) for (b, w), d in merged.items() if d])
        except BackendUnavailable:
            pass  # the estimates stay; they slide out of the window within two minutes anyway

    async def drain(self) -> None:
        await self._corrections.drain()

    async def acquire(
        self, *, key: str, team: str, key_limit: RateLimit | None, team_limit: RateLimit | None, tokens: int,
        on_failure: Literal["open", "closed"] = "open",
    ) -> RateTicket:
        """Admit the request or raise ``RateLimitExceeded`` / ``StateUnavailable``.

        ``tokens``: the estimate charged now, e.g. ``facts.prompt_tokens + (max_output or expected output)``.
        """
        checks = _checks(key, team, key_limit, team_limit, max(0, tokens))
        if not checks:
            return UNLIMITED
        try:
            outcome = await self._backend.rate_consume([c.charge for c in checks], self._window_ms)
        except BackendUnavailable as exc:
            if on_failure == "closed":
                raise StateUnavailable(
                    "Rate limits cannot be checked right now (shared state unavailable); try again shortly.",
                    headers={"retry-after": "1"},
                ) from exc
            return RateTicket(headers={}, degraded=True)
        headers = self._headers(checks, outcome)
        if not outcome.admitted:
            raise self._refusal(checks, outcome, headers)
        token_buckets = tuple(c.charge.bucket for c in checks if c.kind == "tokens")
        return RateTicket(headers, tokens=max(0, tokens), token_buckets=token_buckets, window=outcome.window)

    async def reconcile(self, ticket: RateTicket, actual_tokens: int) -> None:
        """Replace the up-front token estimate by the real count (prompt + completion). Never raises."""
        delta = actual_tokens - ticket.tokens
        if delta == 0 or not ticket.token_buckets:
            return
        for bucket in ticket.token_buckets:
            try:
                await self._backend.rate_adjust(bucket, ticket.window, delta)
            except BackendUnavailable:
                return  # the estimate stays; it slides out of the window within two minutes anyway

    def _headers(self, checks: list[_Check], outcome: RateOutcome) -> dict[str, str]:
        w, e = self._window_ms, outcome.elapsed_ms
        tightest: dict[str, tuple[int, int, int]] = {}
        for check, count in zip(checks, outcome.counts, strict=True):
            current = count.current + (check.charge.cost if outcome.admitted else 0)
            left = sliding.remaining(count.previous, current, check.charge.limit, e, w)
            if check.kind not in tightest or left < tightest[check.kind][1]:
                reset = sliding.reset_ms(count.previous, current, e, w)
                tightest[check.kind] = (check.charge.limit, left, reset)
        headers: dict[str, str] = {}
        for kind, (limit, left, reset) in tightest.items():
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(left)
            headers[f"x-ratelimit-reset-{kind}"] = sliding.format_duration(reset)
        return headers

    def _refusal(self, checks: list[_Check], outcome: RateOutcome, headers: dict[str, str]) -> RateLimitExceeded:
        w, e = self._window_ms, outcome.elapsed_ms
        refused: list[tuple[_Check, WindowCount]] = [
            (c, n) for c, n in zip(checks, outcome.counts, strict=True)
            if not sliding.fits(n.previous, n.current, c.charge.cost, c.charge.limit, e, w)
        ]
        waits = [
            sliding.retry_after_ms(n.previous, n.current, c.charge.cost, c.charge.limit, e, w) for c, n in refused
        ]
        check, count = refused[0]
        c = check.charge
        used = math.ceil(sliding.used(count.previous, count.current, e, w))
        message = (
            f"Rate limit reached for {_UNITS[check.kind]} on {check.scope} `{check.name}`: "
            f"Limit {c.limit}, Used {used}, Requested {c.cost}."
        )
        headers = dict(headers)
        if all(wait is not None for wait in waits):
            wait_ms = max(wait for wait in waits if wait is not None)
            headers["retry-after"] = str(max(1, math.ceil(wait_ms / 1000)))
            headers["retry-after-ms"] = str(wait_ms)
            message += f" Please try again in {sliding.format_duration(wait_ms)}."
        else:
            message += " The request is larger than the limit and can never be admitted."
        return RateLimitExceeded(message, kind=check.kind, scope=check.scope, headers=headers)


def _checks(key: str, team: str, key_limit: RateLimit | None, team_limit: RateLimit | None, tokens: int) -> list[_Check]:
    checks: list[_Check] = []
    for kind in ("requests", "tokens"):
        for scope, name, limits in (("key", key, key_limit), ("team", team, team_limit)):
            limit = None if limits is None else limits.requests_per_minute if kind == "requests" else limits.tokens_per_minute
            if limit is not None:
                cost = 1 if kind == "requests" else tokens
                # `{team}` is a Redis hash tag: a key's buckets and its team's share one cluster slot,
                # so one script checks and charges them all atomically (state/scripts.py).
                bucket = f"{{{team}}}{scope}:{name}:{kind}"
                checks.append(_Check(kind, scope, name, RateCharge(bucket, limit, cost)))  # type: ignore[arg-type]
    return checks
