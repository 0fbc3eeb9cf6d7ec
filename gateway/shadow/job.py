"""What the pipeline hands the shadow runner once a sampled request's primary has answered, and what
becomes of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.core.types import Endpoint, RequestFacts, ShadowPlan, Usage
from gateway.policy.models import Deployment
from gateway.routing.executor import RequestFor
from gateway.routing.runtime import PolicySnapshot
from gateway.shadow.compare import Expectation, Scores


@dataclass(slots=True)
class Primary:
    """A finished primary answer. Built on the request path: holds references, copies nothing."""

    request_id: str
    model: str
    plan: ShadowPlan
    snapshot: PolicySnapshot
    facts: RequestFacts
    required: dict[str, Any]
    """The request's hard requirements (``Decision.required``): the shadow and the embedder must meet them."""
    deployment: Deployment
    endpoint: Endpoint
    """The API the primary was called on."""
    request_for: RequestFor
    """The pipeline's request shaping: the shadow is sent what a target of its kind would be sent."""
    chat_body: dict[str, Any]
    """The request in chat shape (what it asked for: tools, a JSON schema)."""
    usage: Usage
    seconds: float
    """The primary's upstream time to its last byte."""
    ttft_seconds: float | None = None
    """Streams: request received → first event sent."""
    body: dict[str, Any] | bytes | None = None
    """A non-streamed answer (parsed when the provider parsed it)."""
    events: list[bytes] | None = None
    """A streamed answer, as the upstream sent it."""
    size: int = 0
    """Bytes of the answer (body or events): how much work reading and comparing it is."""

    @property
    def expectation(self) -> Expectation:
        return Expectation.of(self.chat_body)


@dataclass(slots=True)
class Result:
    """What became of one shadow: ``compared``, ``failed`` or ``dropped`` (with ``reason``)."""

    primary: Primary
    outcome: str
    reason: str = ""
    """A drop's reason, or a failure's error kind."""
    scores: Scores | None = None
    shadow_seconds: float | None = None
    shadow_usage: Usage | None = None
    primary_cost_usd: float = 0.0
    shadow_cost_usd: float = 0.0
    spend: dict[str, float] = field(default_factory=dict)
    """USD this shadow's work cost per deployment (the shadow call, the similarity embeddings)."""
