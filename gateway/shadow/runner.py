"""The shadow runner: takes finished primaries from the pipeline and owns everything that follows.

``offer`` is called on the request path once a sampled request's primary answer has been accounted; it
never waits and never raises. From there the runner owns the work: at most
``defaults.shadow.max_in_flight`` shadows run at once as its own tasks, up to ``max_queued`` more wait,
and anything beyond is dropped (``queue_full``). A shadow is also dropped, and counted, when the engine
skipped it (the shadow does not meet the request's requirements, …), when its deployment is the one
that answered (``same_deployment``), when the primary's answer cannot be read (``primary_unreadable``),
when the daily shadow budget would be exceeded (``budget``), when its deployment is unhealthy
(``breaker_open``) or busy (``saturated``), and when the process shuts down (``shutdown``).

A shadow is sent once, non-streamed, through the shadow deployment's provider with the request shaped
for it by the pipeline (translated where needed) — never through the response cache or the team's
rate limits, never charged to the team. Its answer is compared with the primary's in a worker thread
(the comparison is pure, but a long answer or schema should not hold the event loop). Whatever
happens is recorded (``record``); nothing is ever raised to the client, who has long had its answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from gateway.core.errors import GatewayError
from gateway.core.hooks import ExecutorHooks
from gateway.core.types import Usage
from gateway.metrics.shadow import ShadowMetrics
from gateway.policy.models import Deployment
from gateway.policy.prices import request_cost
from gateway.providers.base import UpstreamCall
from gateway.routing.runtime import Runtime
from gateway.routing.tokens import estimate_text_tokens
from gateway.shadow.answers import Answer, answer_of, answer_of_stream
from gateway.shadow.budget import ShadowBudget
from gateway.shadow.call import Dropped, send
from gateway.shadow.compare import Scores, compare
from gateway.shadow.embedding import embedder_for, embedding_cosine
from gateway.shadow.job import Primary, Result
from gateway.shadow.record import ShadowRecorder

log = logging.getLogger("gateway.shadow")

_STREAM_FIELDS = ("stream", "stream_options")
INLINE_BYTES = 64 * 1024
"""Answers up to this size (both sides together) are read and compared on the event loop: a few tens of
microseconds. Larger ones go to the runner's worker thread, so a long answer never holds the loop — at the
price of the thread hand-off, and of the loop waiting up to the interpreter's switch interval (5 ms) for
the GIL while that thread computes, which is why small ones stay inline (measured: bench/shadow_latency.py)."""


class ShadowRunner:
    def __init__(self, runtime: Runtime, recorder: ShadowRecorder, budget: ShadowBudget,
                 hooks: ExecutorHooks | None = None) -> None:
        self._runtime = runtime
        self._recorder = recorder
        self._budget = budget
        self._hooks = hooks or ExecutorHooks()
        self._metrics: ShadowMetrics = recorder.metrics
        self._queue: deque[Primary] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._idle: asyncio.Event | None = None

    def offer(self, primary: Primary) -> None:
        """A sampled request's primary has answered: shadow it, or record why not. Never raises or waits."""
        try:
            self._offer(primary)
        except Exception:  # a shadow must never reach the request that offered it
            log.exception("shadow of request %s could not be started", primary.request_id)

    def _offer(self, p: Primary) -> None:
        plan = p.plan
        reason = None
        if self._closed:
            reason = "shutdown"
        elif plan.skipped is not None:
            reason = plan.skipped
        elif plan.deployment == p.deployment.name:
            reason = "same_deployment"
        if reason is not None:
            self._recorder.record(Result(p, "dropped", reason))
            return
        settings = p.snapshot.policy.defaults.shadow
        if len(self._tasks) < settings.max_in_flight:
            self._start(p)
        elif len(self._queue) < settings.max_queued:
            self._queue.append(p)
            self._metrics.queued.inc()
        else:
            self._recorder.record(Result(p, "dropped", "queue_full"))

    def _start(self, p: Primary) -> None:
        task = asyncio.get_running_loop().create_task(self._run(p), name="gateway-shadow")
        self._tasks.add(task)
        self._metrics.in_flight.inc()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._metrics.in_flight.dec()
        while self._queue and not self._closed:
            nxt = self._queue[0]
            if len(self._tasks) >= nxt.snapshot.policy.defaults.shadow.max_in_flight:
                break
            self._queue.popleft()
            self._metrics.queued.dec()
            self._start(nxt)
        if not self._tasks and not self._queue and self._idle is not None:
            self._idle.set()

    async def _run(self, p: Primary) -> None:
        try:
            result = await self._shadow(p)
        except asyncio.CancelledError:
            self._recorder.record(Result(p, "dropped", "shutdown"))
            raise
        except Exception:
            log.exception("shadow of request %s failed inside the gateway", p.request_id)
            result = Result(p, "failed", "internal")
        self._recorder.record(result)

    async def _shadow(self, p: Primary) -> Result:
        policy = p.snapshot.policy
        dep = policy.deployments[p.plan.deployment]
        primary_cost = request_cost(p.deployment, p.usage.prompt_tokens, p.usage.completion_tokens)
        primary_answer = await self._work(p.size, _primary_answer, p)
        if primary_answer is None:
            return Result(p, "dropped", "primary_unreadable", primary_cost_usd=primary_cost)
        expected = request_cost(dep, p.usage.prompt_tokens, p.usage.completion_tokens)
        reserved = await self._budget.reserve(policy.defaults.shadow.daily_budget_usd, expected)
        if reserved is None:
            return Result(p, "dropped", "budget", primary_cost_usd=primary_cost)
        result = Result(p, "failed", primary_cost_usd=primary_cost)
        try:
            await self._send_and_compare(p, dep, primary_answer, result)
        finally:
            self._budget.settle(reserved, sum(result.spend.values()))
        return result

    async def _send_and_compare(self, p: Primary, dep: Deployment, primary_answer: Answer, result: Result) -> None:
        try:
            request = p.request_for(dep)
        except GatewayError as exc:  # the request cannot be put in the shadow's shape
            result.reason = exc.kind
            return
        body = {k: v for k, v in request.body.items() if k not in _STREAM_FIELDS}
        call = UpstreamCall(request.endpoint, body, False, f"{p.request_id}:shadow")
        try:
            sent = await send(dep, p.snapshot.providers[dep.name], call, self._runtime, self._hooks)
        except Dropped as dropped:
            result.outcome, result.reason = "dropped", dropped.reason
            return
        except GatewayError as exc:
            result.reason = exc.kind
            return
        reply = sent.reply
        try:
            parsed = reply.parsed if reply.parsed is not None else orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            parsed = None
        shadow_answer = answer_of(request.endpoint, parsed) if isinstance(parsed, dict) else None
        usage = reply.usage or Usage(p.facts.prompt_tokens, estimate_text_tokens(shadow_answer.text if shadow_answer else ""),
                                     estimated=True)
        result.shadow_usage, result.shadow_seconds = usage, sent.seconds
        result.shadow_cost_usd = request_cost(dep, usage.prompt_tokens, usage.completion_tokens)
        result.spend[dep.name] = result.shadow_cost_usd
        if shadow_answer is None:
            result.reason = "unreadable_answer"
            return
        scores: Scores = await self._work(p.size + len(reply.body), compare, primary_answer, shadow_answer,
                                          p.expectation)
        if scores.text_similarity is not None:
            scores = await self._embedded(p, primary_answer, shadow_answer, scores, result)
        result.outcome, result.scores = "compared", scores

    async def _embedded(self, p: Primary, a: Answer, b: Answer, scores: Scores, result: Result) -> Scores:
        embedder = embedder_for(p.snapshot, p.required)
        if embedder is None:
            return scores
        embedded = await embedding_cosine(a.text, b.text, embedder, p.snapshot, self._runtime, self._hooks,
                                          p.request_id)
        if embedded.cost_usd:
            result.spend[embedder.name] = result.spend.get(embedder.name, 0.0) + embedded.cost_usd
        return scores if embedded.cosine is None else scores.with_embedding_similarity(embedded.cosine)

    async def _work(self, size: int, fn: Any, *args: Any) -> Any:
        if size <= INLINE_BYTES:
            return fn(*args)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-shadow-compare")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @property
    def busy(self) -> int:
        """Shadows under way or waiting."""
        return len(self._tasks) + len(self._queue)

    async def drain(self) -> None:
        """Wait until every shadow offered so far has finished (tests, benchmarks; bound it with a timeout)."""
        while self._tasks or self._queue:
            self._idle = asyncio.Event()
            await self._idle.wait()

    async def stop(self) -> None:
        """Shutdown: queued shadows are dropped (``shutdown``), those under way cancelled (and recorded so)."""
        self._closed = True
        while self._queue:
            self._metrics.queued.dec()
            self._recorder.record(Result(self._queue.popleft(), "dropped", "shutdown"))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _primary_answer(p: Primary) -> Answer | None:
    if p.events is not None:
        return answer_of_stream(p.endpoint, p.events)
    body = p.body
    if isinstance(body, bytes):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
    return answer_of(p.endpoint, body) if isinstance(body, dict) else None
