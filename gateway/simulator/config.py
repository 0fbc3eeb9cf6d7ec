"""Simulator settings: server-wide defaults, per-model overrides, and the knobs one request gets.

Precedence for each knob, highest first: request header (``x-sim-*``), ``model_overrides[model]``,
keywords in the model name (faults only), server-wide default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gateway.simulator.faults import NO_FAULT, Fault, fault_from_model_name, parse_fault

DEFAULT_MODELS = ("sim-small", "sim-large", "sim-embed")
_OVERRIDE_KEYS = frozenset({"ttft_ms", "tokens_per_second", "output_tokens", "fault", "variant"})


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Server-wide behaviour. Build with ``SimConfig.from_kwargs(**config)`` to get validation."""

    ttft_ms: float = 20.0
    """Delay before the first stream event (and added to non-streaming answers)."""
    tokens_per_second: float | None = None
    """Stream pacing after the first event; ``None`` or 0 sends events as fast as possible."""
    output_tokens: int = 16
    """Answer length in tokens (whitespace words) unless ``max_tokens`` or ``stop`` cut it short."""
    embedding_dim: int = 256
    models: tuple[str, ...] = DEFAULT_MODELS
    """Ids listed by ``GET /v1/models``; every endpoint still accepts any model id."""
    fault: str | None = None
    """Fault spec applied to every request that names no other fault (see ``faults``)."""
    seed: int = 0
    """Seeds ``flaky`` draws and, mixed with each request, the generated text."""
    api_key: str | None = None
    """When set, requests must carry it (``Authorization: Bearer``, ``x-api-key`` or ``x-goog-api-key``)."""
    model_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per model id: any of ``ttft_ms``, ``tokens_per_second``, ``output_tokens``, ``fault``, ``variant``."""
    max_hang_s: float = 3600.0
    """How long ``hang`` holds a request before dropping it."""
    slots: int | None = None
    """Generations run at once; more wait in line (``serving_slots``). ``None``: no limit."""
    variant: int = 0
    """Answer as another model of the family would (``variants``); 0: the plain answers."""

    @classmethod
    def from_kwargs(cls, **config: Any) -> SimConfig:
        """Validated config from keyword arguments (unknown keys and bad fault specs raise ``ValueError``)."""
        known = {f.name for f in fields(cls)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"unknown simulator settings {sorted(unknown)}; known: {sorted(known)}")
        if "models" in config:
            config["models"] = _model_ids(config["models"])
        for model, override in (config.get("model_overrides") or {}).items():
            bad = set(override) - _OVERRIDE_KEYS
            if bad:
                raise ValueError(f"model_overrides[{model!r}] has unknown keys {sorted(bad)}")
            parse_fault(override.get("fault"))
        parse_fault(config.get("fault"))
        slots = config.get("slots")
        if slots is not None and (not isinstance(slots, int) or isinstance(slots, bool) or slots < 1):
            raise ValueError(f"slots must be a positive integer, not {slots!r}")
        tps = config.get("tokens_per_second")
        config["tokens_per_second"] = float(tps) if tps else None
        return cls(**config)


def _model_ids(models: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(models, str):
        models = models.split(",")
    return tuple(m.strip() for m in models if m.strip())


@dataclass(frozen=True, slots=True)
class Knobs:
    """What one request gets: timing in seconds, answer length and fault."""

    ttft_s: float
    tps: float | None
    output_tokens: int
    fault: Fault = NO_FAULT
    variant: int = 0

    def generation_seconds(self, tokens: int) -> float:
        """Wall time a non-streaming answer of ``tokens`` tokens takes."""
        return self.ttft_s + (tokens / self.tps if self.tps else 0.0)


class KnobResolver:
    """Resolves knobs per request; the model-dependent part is cached per model id."""

    _CACHE_LIMIT = 4096

    def __init__(self, config: SimConfig) -> None:
        self._config = config
        self._default_fault = parse_fault(config.fault)
        self._by_model: dict[str, Knobs] = {}

    def for_request(self, model: str, headers: Mapping[str, str]) -> Knobs:
        """Knobs for ``model`` with ``x-sim-*`` headers applied. Raises ``ValueError`` on bad headers."""
        knobs = self._by_model.get(model)
        if knobs is None:
            if len(self._by_model) >= self._CACHE_LIMIT:
                self._by_model.clear()
            knobs = self._by_model[model] = self._for_model(model)
        if not any(name.startswith("x-sim-") for name in headers):
            return knobs
        return _apply_headers(knobs, headers)

    def _for_model(self, model: str) -> Knobs:
        config = self._config
        override = config.model_overrides.get(model, {})
        if "fault" in override:
            fault = parse_fault(override["fault"])
        else:
            fault = fault_from_model_name(model) or self._default_fault
        ttft_ms = float(override.get("ttft_ms", config.ttft_ms))
        tps = override.get("tokens_per_second", config.tokens_per_second)
        output_tokens = int(override.get("output_tokens", config.output_tokens))
        variant = int(override.get("variant", config.variant))
        return _with_fault(Knobs(ttft_ms / 1000.0, float(tps) if tps else None, output_tokens, variant=variant), fault)


def _apply_headers(knobs: Knobs, headers: Mapping[str, str]) -> Knobs:
    ttft_s, tps, output_tokens, fault = knobs.ttft_s, knobs.tps, knobs.output_tokens, knobs.fault
    variant = knobs.variant
    try:
        if "x-sim-ttft-ms" in headers:
            ttft_s = max(0.0, float(headers["x-sim-ttft-ms"])) / 1000.0
        if "x-sim-tps" in headers:
            tps = float(headers["x-sim-tps"]) or None
        if "x-sim-output-tokens" in headers:
            output_tokens = max(0, int(headers["x-sim-output-tokens"]))
        if "x-sim-variant" in headers:
            variant = int(headers["x-sim-variant"])
    except ValueError:
        raise ValueError("x-sim-ttft-ms, x-sim-tps, x-sim-output-tokens and x-sim-variant take numbers") from None
    if "x-sim-fault" in headers:
        fault = parse_fault(headers["x-sim-fault"])
    return _with_fault(Knobs(ttft_s, tps, output_tokens, variant=variant), fault)


def _with_fault(knobs: Knobs, fault: Fault) -> Knobs:
    # ``slow`` is a timing fault: it replaces the pacing rather than being checked per event.
    tps = fault.slow_tps if fault.slow_tps is not None else knobs.tps
    return Knobs(knobs.ttft_s, tps, knobs.output_tokens, fault, knobs.variant)
