"""Shared state: response cache, rate limits, budgets and spend, shared live statistics.

Architecture::

    StateService.from_settings(redis_url, timeout, on_error, on_health)
      ├── cache         ResponseCache   plan → lookup → store (cache.py; SSE <-> completion in stream_*.py)
      ├── limiter       RateLimiter     acquire → reconcile (ratelimit.py; sliding windows in window.py)
      ├── budgets       BudgetChecker   status / check, one read per team per second (budget.py)
      ├── spend         SpendRecorder   record → background worker → exactly-once counters (spend.py)
      ├── shadows       ShadowTally     shadow evaluation counters per pair and day/month, exactly once (shadow_tally.py)
      └── shared_stats  SharedStats     publish / fetch of per-process live stats (shared_stats.py)
            │
            ▼
      StateBackend protocol (backend.py)
        ├── MemoryBackend  in-process default (memory.py)
        └── RedisBackend   standalone Redis or Redis Cluster (detected), Lua scripts (redis_backend.py,
                           scripts.py), settings from one URL parse (redis_settings.py), lean request-path
                           connection (resp.py); every call through CallGuard (guard.py): timeout, error
                           count, health, back-off, last error

Failure policy: a backend failure raises ``BackendUnavailable`` inside this package only. The cache
fails open (a miss; nothing stored), rate limits and budgets fail open or closed as the caller says
(``Defaults.rate_limit_failure``; closed raises ``StateUnavailable``, 503), spend is retried without
double counting, shared stats are skipped. No redis exception ever leaves the package.

Redis keys are namespaced and versioned (``gw:v1:cache:…``, ``gw:v1:rl:{team}…``, ``gw:v1:{spend}:…``,
``gw:v1:{shadow}:…``, ``gw:v1:stats``), hash-tagged so that each script's keys share one cluster slot. A
standalone Redis (TCP, TLS or unix socket) or a Redis Cluster (any node's URL) is supported; Sentinel is not.
"""

from gateway.state.backend import StateBackend
from gateway.state.budget import BudgetChecker, BudgetStatus
from gateway.state.cache import (
    CacheEntry,
    CachePlan,
    ResponseCache,
    StreamCapture,
    allowed_hostings,
    cacheable,
    completion_from_stream,
    stream_from_completion,
)
from gateway.state.errors import BackendUnavailable, StateUnavailable
from gateway.state.memory import MemoryBackend
from gateway.state.ratelimit import RateLimiter, RateLimitExceeded, RateTicket
from gateway.state.service import StateService
from gateway.state.shadow_tally import ShadowCounts, ShadowTally, ShadowTallyReport
from gateway.state.shared_stats import SharedStats
from gateway.state.spend import SpendRecorder, SpendReport

__all__ = [
    "BackendUnavailable", "BudgetChecker", "BudgetStatus", "CacheEntry", "CachePlan", "MemoryBackend",
    "RateLimitExceeded", "RateLimiter", "RateTicket", "ResponseCache", "ShadowCounts", "ShadowTally",
    "ShadowTallyReport", "SharedStats", "SpendRecorder",
    "SpendReport", "StateBackend", "StateService", "StateUnavailable", "StreamCapture", "allowed_hostings",
    "cacheable", "completion_from_stream", "stream_from_completion",
]
