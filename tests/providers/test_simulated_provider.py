"""The in-process ``simulator`` provider: replies, streams, and failures as gateway errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.core.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.core.types import Endpoint, Usage
from gateway.policy.models import Deployment
from gateway.providers.base import Timeouts, UpstreamCall
from gateway.providers.registry import ProviderContext, build_provider
from gateway.providers.simulated import SimulatedProvider
from gateway.simulator.server import SimulatorServer

HELLO = [{"role": "user", "content": "Hello there"}]


def deployment(**params: Any) -> Deployment:
    return Deployment(
        name="sim-a", type="simulator", model="sim-model", api_key="sk-sim", headers={"X-Team": "blue"},
        hosting="self", params={"ttft_ms": 0, **params},
    )


def provider(**params: Any) -> SimulatedProvider:
    return build_provider(deployment(**params), ProviderContext())


def call(
    *,
    stream: bool = False,
    fault: str | None = None,
    endpoint: Endpoint = Endpoint.CHAT,
    body: dict | None = None,
    **timeouts: float,
) -> UpstreamCall:
    body = body or {"model": "sim-model", "messages": HELLO}
    return UpstreamCall(
        endpoint=endpoint,
        body={**body, "stream": stream} if endpoint is Endpoint.CHAT else body,
        stream=stream,
        request_id="req-1",
        timeouts=Timeouts(**timeouts),
        extra_headers={"x-sim-fault": fault} if fault else {},
    )


async def test_registry_builds_it_and_shares_the_simulator():
    context = ProviderContext()
    built = build_provider(deployment(), context)
    assert isinstance(built, SimulatedProvider)
    assert context.shared["simulators"]["sim-a"] is built.simulator
    assert await built.check_health() is True
    await built.aclose()


async def test_unknown_params_are_rejected():
    with pytest.raises(ValueError, match="ttft"):
        provider(ttft=5)


async def test_complete_returns_body_usage_and_parsed():
    reply = await provider().complete(call())
    assert reply.status == 200
    assert reply.parsed == orjson.loads(reply.body)
    assert reply.parsed["object"] == "chat.completion"
    assert reply.usage == Usage(prompt_tokens=3, completion_tokens=16)


async def test_sends_key_and_deployment_headers():
    sim_provider = provider()
    await sim_provider.complete(call())
    last = sim_provider.simulator.ledger.snapshot()["last_request"]["sim-model"]
    assert last["headers"]["authorization"] == "Bearer sk-sim"
    assert last["headers"]["x-team"] == "blue"
    assert last["path"] == "/v1/chat/completions"


async def test_embeddings_endpoint():
    body = {"model": "sim-model", "input": ["a", "b"]}
    reply = await provider(embedding_dim=8).complete(call(endpoint=Endpoint.EMBEDDINGS, body=body))
    assert [len(d["embedding"]) for d in reply.parsed["data"]] == [8, 8]
    assert reply.usage == Usage(prompt_tokens=2, completion_tokens=0)


async def test_stream_yields_openai_events_until_done():
    stream = await provider().open_stream(call(stream=True))
    assert stream.first.startswith(b"data: ")
    assert orjson.loads(stream.first[6:])["choices"][0]["delta"]["role"] == "assistant"
    rest = [event async for event in stream]
    await stream.aclose()
    assert rest[-1] == b"data: [DONE]\n\n"
    assert all(e.endswith(b"\n\n") for e in rest)
    assert len(rest) == 16 + 2  # tokens, the finish chunk, [DONE]


async def test_in_process_bytes_match_the_http_server():
    """Same core, same answer: only the per-response id and timestamp differ."""

    def comparable(body: bytes) -> dict:
        parsed = orjson.loads(body)
        return {k: v for k, v in parsed.items() if k not in ("id", "created")}

    request = {"model": "sim-model", "messages": HELLO, "seed": 3, "n": 2, "logprobs": True}
    in_process = await provider().complete(call(body=request))
    async with SimulatorServer(ttft_ms=0) as sim:
        answer = await sim.simulator.handle(
            "POST", "/v1/chat/completions", {}, orjson.dumps({**request, "stream": False})
        )
    assert comparable(in_process.body) == comparable(answer.body)


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("status=429;retry_after=2", UpstreamRateLimited, 429),
        ("status=503", UpstreamUnavailable, 503),
        ("status=500", UpstreamError, 502),
        ("status=502", UpstreamError, 502),
        ("status=504", UpstreamTimeout, 504),
        ("status=400", UpstreamStatusError, 400),
        ("status=404", UpstreamStatusError, 404),
        ("reset", UpstreamUnavailable, 503),
        ("malformed", UpstreamProtocolError, 502),
    ],
)
async def test_failures_become_gateway_errors(fault, error, status):
    with pytest.raises(error) as info:
        await provider().complete(call(fault=fault))
    assert type(info.value) is error
    assert info.value.status == status
    assert "sim-a" in info.value.message


async def test_rate_limit_keeps_retry_after_and_4xx_is_not_retryable():
    with pytest.raises(UpstreamRateLimited) as info:
        await provider().complete(call(fault="status=429;retry_after=2"))
    assert info.value.retry_after == 2.0 and info.value.retryable
    with pytest.raises(UpstreamStatusError) as info:
        await provider().complete(call(fault="status=422"))
    assert not info.value.retryable and info.value.fault == "caller"


async def test_wrong_key_is_a_401():
    with pytest.raises(UpstreamStatusError) as info:
        await provider(api_key="sk-other").complete(call())
    assert info.value.status == 401


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("status=503", UpstreamUnavailable),
        ("reset", UpstreamUnavailable),
        ("malformed", UpstreamProtocolError),
    ],
)
async def test_stream_failures_before_the_first_event(fault, error):
    with pytest.raises(error):
        await provider().open_stream(call(stream=True, fault=fault))


@pytest.mark.parametrize("fault", ["truncate_after=3", "reset_after=3", "malformed_after=3"])
async def test_broken_streams_raise_from_the_iterator(fault):
    stream = await provider().open_stream(call(stream=True, fault=fault))
    received = []
    with pytest.raises(UpstreamProtocolError):
        async for event in stream:
            received.append(event)
    await stream.aclose()
    assert len(received) == 2  # events 1 and 2 (event 0 was ``first``)


async def test_first_byte_timeout_on_hang():
    with pytest.raises(UpstreamTimeout):
        await provider().complete(call(fault="hang", first_byte=0.1))
    with pytest.raises(UpstreamTimeout):
        await provider().open_stream(call(stream=True, fault="hang", first_byte=0.1))
    with pytest.raises(UpstreamTimeout):  # a slow first token counts against first_byte too
        await provider(ttft_ms=500).open_stream(call(stream=True, first_byte=0.1))


async def test_idle_timeout_mid_stream():
    stream = await provider().open_stream(call(stream=True, fault="hang_after=4", idle=0.1))
    received = []
    with pytest.raises(UpstreamTimeout):
        async for event in stream:
            received.append(event)
    assert len(received) == 3
    await stream.aclose()


async def test_total_timeout_bounds_a_slow_stream():
    stream = await provider(tokens_per_second=20).open_stream(call(stream=True, idle=5, total=0.2))
    with pytest.raises(UpstreamTimeout):
        async for _ in stream:
            pass
    await stream.aclose()


async def test_closing_early_stops_the_simulated_upstream():
    stream = await provider(tokens_per_second=50).open_stream(call(stream=True))
    await anext(aiter(stream))
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(aiter(stream))
