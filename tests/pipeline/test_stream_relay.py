"""The stream relay meters what passes: exact usage when the upstream reports it, an estimate that
never undercuts staying when the client leaves first, and resources released exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from gateway.core.hooks import ExecutorHooks
from gateway.core.types import Endpoint, RequestFacts, Usage
from gateway.pipeline.call import Call
from gateway.pipeline.responses import sse_error
from gateway.pipeline.stream_meters import ESTIMATE_MARGIN, ChatMeter
from gateway.pipeline.stream_relay import StreamRelay
from gateway.policy.loader import parse_policy
from gateway.providers.base import UpstreamStream
from gateway.routing.breaker import CircuitBreaker
from gateway.routing.lease import StreamLease
from gateway.routing.saturation import ConcurrencyGate
from gateway.routing.stats import LiveStats

POLICY = parse_policy("""
deployments:
  d: {type: simulator, model: m, hosting: self}
models:
  m: {deployments: [d]}
""").policy


def chunk(content: str | None = None, finish: str | None = None, sep: bytes = b"\n\n") -> bytes:
    delta = {} if content is None else {"content": content}
    payload = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(payload) + sep


def usage_event(prompt: int, completion: int, sep: bytes = b"\n\n") -> bytes:
    payload = {"id": "c", "object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
    return b"data: " + orjson.dumps(payload) + sep


class Upstream:
    """A scripted upstream stream: items, with an optional pause before one of them."""

    def __init__(self, items: list[bytes], pause_before: int | None = None) -> None:
        self.items = items
        self.pause_before = pause_before
        self.closed = 0
        self.release = asyncio.Event()

    def stream(self) -> UpstreamStream:
        async def rest() -> AsyncIterator[bytes]:
            for i, item in enumerate(self.items[1:], start=1):
                if i == self.pause_before:
                    await self.release.wait()
                yield item

        async def close() -> None:
            self.closed += 1

        return UpstreamStream(self.items[0], rest(), close)


class Ended:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Usage]] = []

    def __call__(self, relay: StreamRelay, outcome: str, usage: Usage) -> None:
        self.calls.append((outcome, usage))


def relay_for(upstream: Upstream, *, hidden_usage: bool = True, prompt_tokens: int = 100,
              gate: ConcurrencyGate | None = None, stats: LiveStats | None = None) -> tuple[StreamRelay, Ended]:
    call = Call(Endpoint.CHAT, "r", 0.0)
    call.facts = RequestFacts(endpoint=Endpoint.CHAT, model="m", prompt_tokens=prompt_tokens)
    lease = StreamLease(upstream.stream(), POLICY.deployments["d"], 0.0, gate=gate,
                        breaker=CircuitBreaker("d"), stats=stats or LiveStats(), hooks=ExecutorHooks())
    ended = Ended()
    relay = StreamRelay(call, lease, ChatMeter(hidden_usage=hidden_usage), error_event=sse_error, capture=None,
                        on_end=ended)
    return relay, ended


async def drain(relay: StreamRelay) -> bytes:
    return b"".join([item async for item in relay])


ANSWER = [chunk("Hel"), chunk("lo"), chunk(" there"), chunk(None, "stop"), usage_event(12, 3), b"data: [DONE]\n\n"]


@pytest.mark.parametrize("sep", [b"\n\n", b"\r\n\r\n"])
async def test_reported_usage_is_charged_and_the_hidden_usage_event_dropped(sep: bytes) -> None:
    items = [chunk("Hel", sep=sep), chunk("lo", sep=sep), chunk(None, "stop", sep=sep) + usage_event(12, 3, sep=sep),
             b"data: [DONE]" + sep]
    relay, ended = relay_for(Upstream(items))
    sent = await drain(relay)
    await relay.close()
    assert b'"usage"' not in sent and sent.endswith(b"data: [DONE]" + sep)
    assert ended.calls == [("ok", Usage(12, 3))]


async def test_the_usage_event_reaches_a_client_that_asked_for_it() -> None:
    relay, ended = relay_for(Upstream(ANSWER), hidden_usage=False)
    assert b'"prompt_tokens":12' in await drain(relay)
    await relay.close()
    assert ended.calls[0][1] == Usage(12, 3)


async def test_a_client_that_leaves_before_the_usage_event_is_charged_an_estimate_at_least_the_text_it_got() -> None:
    upstream = Upstream(ANSWER, pause_before=3)  # the content has been relayed, the finish has not
    relay, ended = relay_for(upstream, prompt_tokens=12)
    received = [await anext(relay) for _ in range(3)]
    assert len(received) == 3
    await relay.close()  # the client left
    (outcome, usage), = ended.calls
    assert outcome == "cancelled" and usage.estimated
    assert usage.prompt_tokens >= 12 * ESTIMATE_MARGIN and usage.completion_tokens >= 3
    assert upstream.closed == 1


async def test_after_the_finish_the_relay_asks_to_read_on_for_exact_usage() -> None:
    relay, _ = relay_for(Upstream(ANSWER))
    for _ in range(3):
        await anext(relay)
    assert not relay.read_on_after_client_left
    await anext(relay)  # the finish chunk
    assert relay.read_on_after_client_left


async def test_an_upstream_without_usage_is_charged_an_estimate_not_zero() -> None:
    relay, ended = relay_for(Upstream([chunk("a b c d"), chunk(None, "stop"), b"data: [DONE]\n\n"]))
    await drain(relay)
    await relay.close()
    (outcome, usage), = ended.calls
    assert outcome == "ok" and usage.estimated and usage.completion_tokens > 0 and usage.prompt_tokens > 0


async def test_close_releases_the_slot_and_in_flight_count_once_even_when_never_read() -> None:
    gate = ConcurrencyGate(1)
    assert gate.try_acquire()
    stats = LiveStats()
    stats.started("d")
    upstream = Upstream(ANSWER)
    relay, ended = relay_for(upstream, gate=gate, stats=stats)
    await relay.close()
    await relay.close()
    assert gate.in_use == 0 and upstream.closed == 1 and len(ended.calls) == 1
    assert ended.calls[0][1].completion_tokens >= 1, "the first event was generated even if never sent"
    assert gate.try_acquire() and not gate.try_acquire()
