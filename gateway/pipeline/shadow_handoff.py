"""Hand a sampled request's finished primary answer to the shadow runner (``gateway.shadow``).

Called where the pipeline accounts the request, after the client has its answer; it only gathers
references and never waits (the runner takes it from there). Requests answered from the cache, and
those that failed or whose client left, are not shadowed: there is no fresh primary answer to compare.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.core.types import Usage
from gateway.pipeline.call import Call
from gateway.pipeline.dialects import Dialect, Inbound
from gateway.routing.executor import Execution
from gateway.shadow.job import Primary
from gateway.shadow.runner import ShadowRunner


def wants_answer(runner: ShadowRunner | None, call: Call) -> bool:
    """Whether this request's answer will be compared with a shadow's (a stream then keeps its events)."""
    decision = call.decision
    return runner is not None and decision is not None and decision.shadow is not None and decision.shadow.shadowed


def hand_off(runner: ShadowRunner | None, call: Call, dialect: Dialect, inbound: Inbound, execution: Execution, *,
             usage: Usage | None, body: dict[str, Any] | bytes | None = None, events: list[bytes] | None = None,
             ttft: float | None = None, streamed: bool = False, size: int = 0) -> None:
    decision, snapshot, facts, sent = call.decision, call.snapshot, call.facts, execution.request
    if runner is None or decision is None or decision.shadow is None or not decision.shadow.sampled:
        return  # engine-skipped shadows are offered too: the runner records why they were not sent
    if snapshot is None or facts is None or sent is None:
        return
    seconds = time.monotonic() - execution.started if streamed else execution.upstream_seconds
    runner.offer(Primary(
        request_id=call.request_id, model=decision.model, plan=decision.shadow, snapshot=snapshot, facts=facts,
        required=decision.required, deployment=execution.deployment, endpoint=sent.endpoint,
        request_for=dialect.request_for(inbound), chat_body=inbound.chat or inbound.body,
        usage=usage or Usage(facts.prompt_tokens, 0, estimated=True), seconds=seconds, ttft_seconds=ttft,
        body=body, events=events if streamed else None,
        size=sum(len(e) for e in events) if streamed and events is not None else size,
    ))
