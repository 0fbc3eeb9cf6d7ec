"""Plain value types that cross layer boundaries: request facts in, a Decision out, usage back.

They are frozen, slotted dataclasses: cheap to build on the hot path, safe to share between tasks,
and trivially rendered to JSON for the explain endpoint and the access log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class Endpoint(StrEnum):
    """An API a client calls, and an API an upstream serves (the path after ``/v1``)."""

    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    MESSAGES = "messages"
    """Anthropic Messages: served natively, or translated to chat completions."""
    RESPONSES = "responses"
    """OpenAI Responses: served natively, or translated to chat completions."""

    @property
    def translates_to_chat(self) -> bool:
        return self in (Endpoint.MESSAGES, Endpoint.RESPONSES)

    @property
    def path(self) -> str:
        return _PATHS[self]


_PATHS = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.COMPLETIONS: "/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.MESSAGES: "/messages",
    Endpoint.RESPONSES: "/responses",
}


class BreakerState(IntEnum):
    """Circuit breaker state of a deployment (also the value of ``gateway_breaker_state``)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class Feature(StrEnum):
    """What a request needs from a deployment; matched against deployment capabilities."""

    TOOLS = "tools"
    VISION = "vision"
    JSON_SCHEMA = "json_schema"
    JSON_MODE = "json_mode"
    LOGPROBS = "logprobs"
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Everything the routing engine may look at. Built once per request by ``routing.facts``."""

    endpoint: Endpoint
    model: str
    team: str = "default"
    key: str = "anonymous"
    data_class: str = "internal"
    detected: tuple[str, ...] = ()
    prompt_tokens: int = 0
    max_output_tokens: int | None = None
    features: frozenset[str] = frozenset()
    stream: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    hour_utc: int = 0
    weekday: int = 0
    budget_pacing: bool = False
    """The team is in its budget's pacing zone: rank by cost whatever the rules say."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False
    """Counted by the gateway (the upstream never reported usage, or the client left before it did)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        prompt = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
        completion = usage.get("completion_tokens") or usage.get("output_tokens") or 0
        return cls(int(prompt), int(completion))


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment the executor may try, in order."""

    deployment: str
    estimated_cost_usd: float = 0.0
    score: float = 0.0
    expected_latency_ms: float = 0.0
    """The engine's estimate for this request here, queue included."""
    queue_ms: float = 0.0
    """Of which waiting for a free slot, from the server's own load report (self-hosted load sources)."""


@dataclass(frozen=True, slots=True)
class Dropped:
    """A candidate deployment the engine ruled out, and why (a bounded reason code plus detail)."""

    deployment: str
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CacheDirective:
    enabled: bool = False
    ttl_seconds: int = 0
    allow_nondeterministic: bool = False


@dataclass(frozen=True, slots=True)
class ShadowPlan:
    """Whether a request is also sent to a shadow deployment once its primary has answered, and where.

    The engine decides; the shadow runner carries it out (and may still drop it: saturated, breaker open,
    over the shadow budget, queue full). The client never sees any of it.
    """

    deployment: str
    sample: float
    sampled: bool
    """The request id's hash fell within the sample."""
    skipped: str | None = None
    """Why a sampled request is nevertheless not shadowed: ``rule_requirement`` (the shadow does not meet the
    request's hard requirements), ``endpoint_unsupported``, ``capability_missing``, ``context_too_small``,
    ``not_compared`` (embeddings)."""
    detail: str = ""
    set_by: str = "model"
    """``model`` (the model's own ``shadow``) or the name of the rule that set it."""

    @property
    def shadowed(self) -> bool:
        return self.sampled and self.skipped is None


@dataclass(frozen=True, slots=True)
class Decision:
    """The routing engine's answer for one request.

    The same object feeds the response headers, ``/v1/gateway/explain``, the access log and the
    metrics' rule/reason labels, so what the gateway says it did is what it did.
    """

    decision_id: str
    model: str
    targets: tuple[Target, ...]
    dropped: tuple[Dropped, ...] = ()
    rules_fired: tuple[str, ...] = ()
    rule: str = "default"
    objective: str = "cost"
    policy_version: str = ""
    cache: CacheDirective = CacheDirective()
    max_price_usd: float | None = None
    latency_slo_ms: float | None = None
    required: dict[str, Any] = field(default_factory=dict)
    denied: str | None = None
    spilled: tuple[str, ...] = ()
    """Deployments that would have been the primary but for their server's queue (load-aware routing)."""
    shadow: ShadowPlan | None = None
    """Shadow evaluation of this request, when its model or a rule names a shadow (and no rule turned it off)."""

    @property
    def primary(self) -> Target | None:
        return self.targets[0] if self.targets else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
