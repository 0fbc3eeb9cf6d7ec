"""What a self-hosted model server says about its own load, read from the page it publishes.

Pure: text or JSON in, a ``ServerLoad`` out. One reader per load-source type:

    llamacpp        llama-server /metrics   llamacpp:requests_processing, llamacpp:requests_deferred,
                                            llamacpp:kv_cache_usage_ratio (older builds only; newer ones
                                            get it from /slots, see ``kv_usage_from_slots``)
    llamacpp_slots  llama-server /slots     one object per slot, ``is_processing`` (no queue length)
    vllm            vLLM /metrics           vllm:num_requests_running, vllm:num_requests_waiting,
                                            vllm:kv_cache_usage_perc (vllm:gpu_cache_usage_perc before V1)
    sglang          SGLang /metrics         sglang:num_running_reqs, sglang:num_queue_reqs, sglang:token_usage

Counts are summed over label sets (data-parallel engines each report their own); usage ratios take the
highest (the fullest engine is the one a new request may land on). A page without the required metrics
raises ``LoadPageError``: a server started without ``--metrics`` must be noticed, not read as idle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson


class LoadPageError(ValueError):
    """The page is not what the load source's type publishes."""


@dataclass(frozen=True, slots=True)
class ServerLoad:
    running: float
    """Requests the server is working on."""
    waiting: float
    """Requests queued on the server, waiting for a free slot."""
    slots: int | None = None
    """Requests it can run at once, when known."""
    kv_cache_usage: float | None = None
    """Share of the KV cache in use (0..1), when the server publishes it."""
    at: float = 0.0
    """Wall-clock time (``time.time()``) of the reading; comparable across replicas."""

    @property
    def busy(self) -> float:
        return self.running + self.waiting

    def to_dict(self) -> dict[str, float | int | None]:
        return {"running": self.running, "waiting": self.waiting, "slots": self.slots,
                "kv_cache_usage": self.kv_cache_usage, "at": self.at}

    @classmethod
    def from_dict(cls, raw: Any) -> ServerLoad | None:
        """The inverse of ``to_dict`` for a payload from another replica; ``None`` when it is not one."""
        if not isinstance(raw, dict):
            return None
        try:
            running, waiting, at = float(raw["running"]), float(raw["waiting"]), float(raw["at"])
            slots = raw.get("slots")
            kv = raw.get("kv_cache_usage")
            load = cls(running, waiting, int(slots) if slots is not None else None,
                       float(kv) if kv is not None else None, at)
        except (KeyError, TypeError, ValueError):
            return None
        if not all(math.isfinite(v) and v >= 0 for v in (running, waiting, at)):
            return None
        return load


def prometheus_samples(text: str, names: Iterable[str]) -> dict[str, list[float]]:
    """Values of the named metrics in a Prometheus text page, one per label set. Only the names asked
    for are kept, so a page of thousands of histogram buckets costs one pass and no allocations."""
    wanted = frozenset(names)
    found: dict[str, list[float]] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        end = len(line)
        for sep in ("{", " "):
            i = line.find(sep)
            if 0 < i < end:
                end = i
        name = line[:end]
        if name not in wanted:
            continue
        rest = line[end:]
        if rest.startswith("{"):
            close = rest.rfind("}")
            if close < 0:
                continue
            rest = rest[close + 1:]
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        if math.isfinite(value):
            found.setdefault(name, []).append(value)
    return found


def _required(samples: dict[str, list[float]], *names: str) -> float:
    for name in names:
        if name in samples:
            return sum(samples[name])
    raise LoadPageError(f"the page has no {' or '.join(names)}")


def _ratio(samples: dict[str, list[float]], *names: str) -> float | None:
    for name in names:
        if name in samples:
            return min(1.0, max(0.0, max(samples[name])))
    return None


_LLAMACPP = ("llamacpp:requests_processing", "llamacpp:requests_deferred", "llamacpp:kv_cache_usage_ratio")
_VLLM = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
         "vllm:gpu_cache_usage_perc")
_SGLANG = ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage")


def from_llamacpp_metrics(text: str, at: float, slots: int | None = None) -> ServerLoad:
    s = prometheus_samples(text, _LLAMACPP)
    return ServerLoad(_required(s, _LLAMACPP[0]), _required(s, _LLAMACPP[1]), slots, _ratio(s, _LLAMACPP[2]), at)


def from_vllm_metrics(text: str, at: float, slots: int | None = None) -> ServerLoad:
    s = prometheus_samples(text, _VLLM)
    return ServerLoad(_required(s, _VLLM[0]), _required(s, _VLLM[1]), slots, _ratio(s, _VLLM[2], _VLLM[3]), at)


def from_sglang_metrics(text: str, at: float, slots: int | None = None) -> ServerLoad:
    s = prometheus_samples(text, _SGLANG)
    return ServerLoad(_required(s, _SGLANG[0]), _required(s, _SGLANG[1]), slots, _ratio(s, _SGLANG[2]), at)


def _slot_list(body: bytes) -> list[dict[str, Any]]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise LoadPageError("the /slots page is not JSON") from None
    if not isinstance(parsed, list) or not all(isinstance(s, dict) and "is_processing" in s for s in parsed):
        raise LoadPageError("the /slots page is not a list of slots")
    return parsed


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0.0


def kv_usage_from_slots(body: bytes) -> float | None:
    """Share of the context held by requests under way: each busy slot's prompt and the tokens it has
    generated so far, over every slot's context. (Idle slots may keep a cached prompt, but the server
    evicts it for new work, so it is not counted as used.)"""
    slots = _slot_list(body)
    capacity = sum(_number(s.get("n_ctx")) for s in slots)
    if not capacity:
        return None
    used = 0.0
    for s in slots:
        if s["is_processing"] is not True:
            continue
        used += _number(s.get("n_prompt_tokens"))
        for step in s.get("next_token") or ():
            if isinstance(step, dict):
                used += _number(step.get("n_decoded"))
    return min(1.0, used / capacity)


def from_llamacpp_slots(body: bytes, at: float, slots: int | None = None) -> ServerLoad:
    """``GET /slots``: busy slots, the slot count and the context they hold; the queue behind them is not
    published there."""
    parsed = _slot_list(body)
    busy = sum(1 for s in parsed if s["is_processing"] is True)
    return ServerLoad(float(busy), 0.0, len(parsed) or slots, kv_usage_from_slots(body), at)


def total_slots_from_props(body: bytes) -> int | None:
    """llama-server ``GET /props``: ``total_slots`` (its ``-np``), or ``None``."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = parsed.get("total_slots") if isinstance(parsed, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def read_page(source_type: str, body: bytes, at: float, slots: int | None = None) -> ServerLoad:
    """The load a page of ``source_type`` describes. Raises ``LoadPageError`` for a page of another kind."""
    if source_type == "llamacpp_slots":
        return from_llamacpp_slots(body, at, slots)
    text = body.decode("utf-8", "replace")
    if source_type == "llamacpp":
        return from_llamacpp_metrics(text, at, slots)
    if source_type == "vllm":
        return from_vllm_metrics(text, at, slots)
    if source_type == "sglang":
        return from_sglang_metrics(text, at, slots)
    raise LoadPageError(f"unknown load source type {source_type!r}")
