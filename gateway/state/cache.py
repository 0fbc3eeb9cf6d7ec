"""Response cache: exact match on a canonical form of the request, scoped so it can never leak.

The key is a SHA-256 over, in order: the key format version (``v1``), the endpoint, the tenant (team),
the request's data class, and the request body as sorted-key JSON with the fields below removed.
Entries are stored once per hosting class of the deployment that produced them
(``<digest>:self`` / ``<digest>:vendor``), and a lookup only reads the hostings the request may
receive, so a request restricted to self-hosted models cannot even read a vendor-produced entry;
the stored ``hosting`` (and, when the caller passes them, the allowed deployments) are checked again
on the way out.

Fields left out of the key, because they cannot change the answer:
``stream`` and ``stream_options`` (delivery only: any entry can be served as JSON or as SSE),
``user`` and ``safety_identifier`` (end-user ids for abuse monitoring), ``metadata`` and ``store``
(stored-completions bookkeeping), ``service_tier`` (latency class), ``prompt_cache_key`` and
``prompt_cache_retention`` (upstream prompt-cache hints). ``metadata`` and headers can steer
routing, so a different route may be chosen for the same body: pass ``deployments`` (the
deployments the request may be served by) to ``lookup`` and an entry made by any other is a miss.

Everything else stays, including fields the gateway does not know (``top_k``, ``guided_json``…):
``model``, ``messages``/``prompt``, ``n``, ``seed``, ``temperature``, ``top_p``, ``max_tokens``,
``stop``, penalties, ``logit_bias``, ``logprobs``/``top_logprobs``, ``tools``/``tool_choice``/
``parallel_tool_calls``, ``response_format``, ``reasoning_effort``, ``echo``, ``suffix``... Top-level
whole-number floats are written as integers (``temperature: 0.0`` and ``0`` share an entry); defaults
are not filled in, so ``temperature`` absent and ``temperature: 1`` are different entries.

Only deterministic requests are cached unless the policy allows otherwise (``cacheable``). Request
headers: ``Cache-Control: no-cache`` skips the read but stores the fresh answer, ``no-store`` skips
both, ``x-gateway-cache: bypass`` skips both. Errors, truncated streams and answers without a
``finish_reason`` on every choice are never stored.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.core.types import CacheDirective
from gateway.state.backend import StateBackend
from gateway.state.errors import BackendUnavailable
from gateway.state.stream_fold import StreamCapture, completion_from_stream
from gateway.state.stream_replay import stream_from_completion
from gateway.state.write_behind import WriteBehind

__all__ = [
    "CacheEntry", "CachePlan", "ResponseCache", "StreamCapture", "allowed_hostings", "cache_key", "cacheable",
    "completion_from_stream", "request_mode", "storable", "stream_from_completion",
]

KEY_VERSION = "v1"
HOSTINGS = ("self", "vendor")
IGNORED_FIELDS = frozenset({
    "stream", "stream_options", "user", "safety_identifier", "metadata", "store", "service_tier",
    "prompt_cache_key", "prompt_cache_retention",
})
BYPASS_HEADER = "x-gateway-cache"
_COMPLETION_OBJECTS = frozenset({"chat.completion", "text_completion"})


@dataclass(frozen=True, slots=True)
class CachePlan:
    """What the cache will do for one request, decided before routing to an upstream.

    ``status`` is ``disabled`` (policy), ``uncacheable`` (not deterministic), ``bypass`` / ``no-store``
    (neither read nor write), ``no-cache`` (write only) or ``lookup`` (read and write).
    """

    status: str
    key: str | None = None
    ttl_seconds: int = 0
    read: bool = False
    write: bool = False


@dataclass(frozen=True, slots=True)
class CacheEntry:
    hosting: str
    deployment: str
    completion: dict[str, Any]
    stored_at: float = 0.0


def cacheable(body: Mapping[str, Any], directive: CacheDirective, endpoint: str = "chat") -> bool:
    """Whether the policy lets this request's answer be cached and reused."""
    if not directive.enabled or directive.ttl_seconds <= 0:
        return False
    if directive.allow_nondeterministic or endpoint == "embeddings":
        return True
    seed = body.get("seed")
    temperature = body.get("temperature")
    has_seed = isinstance(seed, int) and not isinstance(seed, bool)
    return has_seed or (isinstance(temperature, int | float) and not isinstance(temperature, bool) and temperature == 0)


def request_mode(headers: Mapping[str, str]) -> str | None:
    """``bypass``, ``no-store`` or ``no-cache`` from the request headers (lower-case names), else ``None``."""
    if headers.get(BYPASS_HEADER, "").strip().lower() == "bypass":
        return "bypass"
    directives = {d.strip().lower() for d in headers.get("cache-control", "").split(",")}
    if "no-store" in directives:
        return "no-store"
    if "no-cache" in directives:
        return "no-cache"
    return None


def cache_key(endpoint: str, body: Mapping[str, Any], *, team: str, data_class: str) -> str:
    """Hex digest naming the answer to this request for this tenant and data class."""
    canonical = {k: _canonical_number(v) for k, v in body.items() if k not in IGNORED_FIELDS}
    h = hashlib.sha256()
    for part in (KEY_VERSION, endpoint, team, data_class):
        h.update(part.encode())
        h.update(b"\x00")
    h.update(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def _canonical_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def storable(completion: Any) -> bool:
    """A complete, successful answer: no error, at least one choice, every choice finished."""
    if not isinstance(completion, dict) or "error" in completion:
        return False
    if completion.get("object") == "list":  # embeddings
        return isinstance(completion.get("data"), list)
    choices = completion.get("choices")
    return (
        completion.get("object", "chat.completion") in _COMPLETION_OBJECTS
        and isinstance(choices, list)
        and bool(choices)
        and all(isinstance(c, dict) and c.get("finish_reason") is not None for c in choices)
    )


class ResponseCache:
    def __init__(self, backend: StateBackend, *, max_entry_bytes: int = 1024 * 1024) -> None:
        self._backend = backend
        self._max_entry_bytes = max_entry_bytes
        self._fills: WriteBehind[tuple[str, bytes, int]] = WriteBehind(self._send_fills, delay=0.005)

    def store_later(self, plan: CachePlan, *, hosting: str, deployment: str, completion: Any) -> bool:
        """Like ``store``, but gathered with other fills into one round trip a few milliseconds later.
        Returns whether the entry was accepted for storing."""
        item = self._encode(plan, hosting, deployment, completion)
        if item is None:
            return False
        self._fills.add(item)
        return True

    async def _send_fills(self, batch: list[tuple[str, bytes, int]]) -> None:
        try:
            await self._backend.cache_set_many(batch)
        except BackendUnavailable:
            pass  # fails open: those answers are simply not cached

    async def drain(self) -> None:
        await self._fills.drain()

    def _encode(self, plan: CachePlan, hosting: str, deployment: str, completion: Any) -> tuple[str, bytes, int] | None:
        if not plan.write or plan.key is None or hosting not in HOSTINGS or not storable(completion):
            return None
        value = orjson.dumps(
            {"hosting": hosting, "deployment": deployment, "stored_at": time.time(), "completion": completion}
        )
        if len(value) > self._max_entry_bytes:
            return None
        return f"{plan.key}:{hosting}", value, plan.ttl_seconds

    def plan(
        self, endpoint: str, body: Mapping[str, Any], headers: Mapping[str, str], directive: CacheDirective,
        *, team: str, data_class: str,
    ) -> CachePlan:
        if not directive.enabled:
            return CachePlan("disabled")
        mode = request_mode(headers)
        if mode in ("bypass", "no-store"):
            return CachePlan(mode)
        if not cacheable(body, directive, endpoint):
            return CachePlan("uncacheable")
        key = cache_key(endpoint, body, team=team, data_class=data_class)
        return CachePlan(mode or "lookup", key, directive.ttl_seconds, read=mode is None, write=True)

    async def lookup(
        self, plan: CachePlan, hostings: Collection[str], deployments: Collection[str] | None = None
    ) -> CacheEntry | None:
        """The stored answer, if one exists that this request may receive. Never raises; a failure is a miss.

        ``hostings``: the hosting classes the request may be served from (``{"self"}`` when the policy
        requires self-hosting). ``deployments``: if given, only entries produced by one of these count.
        """
        if not plan.read or plan.key is None:
            return None
        allowed = [h for h in HOSTINGS if h in hostings]
        if not allowed:
            return None
        try:
            values = await self._backend.cache_get([f"{plan.key}:{h}" for h in allowed])
        except BackendUnavailable:
            return None
        for hosting, raw in zip(allowed, values, strict=True):
            entry = _decode(raw)
            if entry is None or entry.hosting != hosting:
                continue
            if deployments is not None and entry.deployment not in deployments:
                continue
            return entry
        return None

    async def store(self, plan: CachePlan, *, hosting: str, deployment: str, completion: Any) -> bool:
        """Keep a successful answer for ``plan.ttl_seconds``; returns whether it was stored. Never raises."""
        item = self._encode(plan, hosting, deployment, completion)
        if item is None:
            return False
        try:
            await self._backend.cache_set(*item)
        except BackendUnavailable:
            return False
        return True


def _decode(raw: bytes | None) -> CacheEntry | None:
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
        return CacheEntry(str(data["hosting"]), str(data["deployment"]), data["completion"], float(data["stored_at"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def allowed_hostings(required: Mapping[str, Any]) -> frozenset[str]:
    """Hostings a Decision's ``required`` constraints let the request receive."""
    hosting = required.get("hosting")
    return frozenset({hosting}) if hosting in HOSTINGS else frozenset(HOSTINGS)
