"""Faults, timing knobs and the /sim endpoints of the simulator, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import openai
import pytest

from gateway.simulator.server import SimulatorServer

HELLO = [{"role": "user", "content": "Hello there"}]
STREAM_BODY = {"model": "m", "messages": HELLO, "stream": True}


@pytest.fixture
async def sim():
    async with SimulatorServer(ttft_ms=0, max_hang_s=30) as server:
        yield server


@pytest.fixture
async def client(sim):
    async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0) as c:
        yield c


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def fault(spec: str) -> dict[str, str]:
    return {"x-sim-fault": spec}


async def test_status_fault_uses_openai_error_shape(client):
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="m", messages=HELLO, extra_headers=fault("status=503"))
    assert info.value.status_code == 503
    assert info.value.body["type"] == "server_error"


async def test_rate_limit_fault_carries_retry_after(client):
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(
            model="m", messages=HELLO, extra_headers=fault("status=429;retry_after=2;message=slow down")
        )
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.body["message"] == "slow down"
    assert info.value.body["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("sim-error-500", openai.InternalServerError),
        ("gpt-4o-fail-502", openai.InternalServerError),
        ("sim-ratelimit", openai.RateLimitError),
        ("sim-status-400", openai.BadRequestError),
    ],
)
async def test_fault_keywords_in_the_model_name(client, model, error):
    with pytest.raises(error):
        await client.chat.completions.create(model=model, messages=HELLO)


async def test_header_none_overrides_a_model_name_fault(client):
    reply = await client.chat.completions.create(
        model="sim-error-500", messages=HELLO, extra_headers=fault("none")
    )
    assert reply.choices[0].finish_reason == "stop"


async def test_fail_first_counts_per_model_and_resets(client, sim, http):
    async def outcome(model: str) -> int:
        try:
            await client.chat.completions.create(model=model, messages=HELLO)
            return 200
        except openai.APIStatusError as exc:
            return exc.status_code

    assert [await outcome("sim-fail-first-2") for _ in range(4)] == [503, 503, 200, 200]
    assert await outcome("other-fail-first-2") == 503  # a separate counter per model
    async with http.post(f"{sim.url}/sim/reset") as resp:
        assert resp.status == 200
    assert await outcome("sim-fail-first-2") == 503


async def test_flaky_is_seeded_and_roughly_proportional(sim, http):
    async def outcomes() -> list[int]:
        statuses = []
        for _ in range(40):
            body = {"model": "m", "messages": HELLO}
            async with http.post(
                f"{sim.openai_base_url}/chat/completions", json=body, headers=fault("flaky=0.5;status=500")
            ) as resp:
                statuses.append(resp.status)
        return statuses

    first = await outcomes()
    assert set(first) == {200, 500}
    assert 8 <= first.count(500) <= 32
    await http.post(f"{sim.url}/sim/reset")
    assert await outcomes() == first


async def test_hang_holds_the_request_until_the_client_gives_up(sim):
    async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0, timeout=0.3) as c:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            await c.chat.completions.create(model="sim-hang", messages=HELLO)
        assert time.monotonic() - started >= 0.25


async def test_reset_drops_the_connection(client):
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="m", messages=HELLO, extra_headers=fault("reset"))


async def read_events(http, sim, spec: str) -> list[bytes]:
    events = []
    async with http.post(
        f"{sim.openai_base_url}/chat/completions", json=STREAM_BODY, headers=fault(spec)
    ) as resp:
        assert resp.status == 200
        buffer = b""
        async with asyncio.timeout(5.0):
            async for data in resp.content.iter_any():
                buffer += data
                *complete, buffer = buffer.split(b"\n\n")
                events += complete
    return events


async def test_truncate_after_ends_the_stream_without_done(sim, http):
    events = await read_events(http, sim, "truncate_after=3")
    assert len(events) == 3
    assert b"data: [DONE]" not in events
    assert all(json.loads(e[6:])["object"] == "chat.completion.chunk" for e in events)


async def test_reset_after_breaks_the_transfer_mid_stream(sim, http):
    with pytest.raises(aiohttp.ClientPayloadError):
        await read_events(http, sim, "reset_after=2")


async def test_hang_after_stalls_mid_stream(sim, http):
    received: list[bytes] = []
    with pytest.raises(TimeoutError):
        async with http.post(
            f"{sim.openai_base_url}/chat/completions", json=STREAM_BODY, headers=fault("hang_after=2")
        ) as resp:
            async with asyncio.timeout(0.4):
                async for line in resp.content:
                    if line.startswith(b"data: "):
                        received.append(line)
    assert len(received) == 2


async def test_malformed_body_and_events(sim, http):
    body = {"model": "m", "messages": HELLO}
    async with http.post(
        f"{sim.openai_base_url}/chat/completions", json=body, headers=fault("malformed")
    ) as resp:
        assert resp.status == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(await resp.read())

    events = await read_events(http, sim, "malformed_after=2")
    assert events[-1] == b"data: [DONE]"
    payloads = [e[6:] for e in events[:-1]]
    for i, payload in enumerate(payloads):
        if i == 2:
            with pytest.raises(json.JSONDecodeError):
                json.loads(payload)
        else:
            json.loads(payload)


async def test_bad_fault_spec_is_rejected_not_ignored(client):
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="m", messages=HELLO, extra_headers=fault("explode=1"))
    assert "explode" in info.value.body["message"]


async def test_ttft_and_pacing_are_honoured(client):
    started = time.monotonic()
    await client.chat.completions.create(model="m", messages=HELLO, extra_headers={"x-sim-ttft-ms": "150"})
    assert time.monotonic() - started >= 0.14

    started = time.monotonic()
    stream = await client.chat.completions.create(
        model="m",
        messages=HELLO,
        stream=True,
        extra_headers={"x-sim-tps": "100", "x-sim-output-tokens": "10"},
    )
    arrivals = [time.monotonic() async for _ in stream]
    # 12 chunks (role, 10 tokens, finish) spaced 10 ms apart after the first.
    assert arrivals[-1] - started >= 0.1


async def test_slow_fault_drips_tokens(client):
    started = time.monotonic()
    reply = await client.chat.completions.create(
        model="m", messages=HELLO, extra_headers={**fault("slow=40"), "x-sim-output-tokens": "8"}
    )
    assert reply.usage.completion_tokens == 8
    assert time.monotonic() - started >= 0.18  # 8 tokens at 40/s


async def test_model_overrides_apply_per_model():
    overrides = {"sim-slow-start": {"ttft_ms": 200}, "sim-short": {"output_tokens": 5, "fault": "none"}}
    async with SimulatorServer(ttft_ms=0, model_overrides=overrides, fault="status=500") as sim:
        async with openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="k", max_retries=0) as c:
            reply = await c.chat.completions.create(model="sim-short", messages=HELLO)
            assert reply.usage.completion_tokens == 5
            with pytest.raises(openai.InternalServerError):  # the server-wide default fault
                await c.chat.completions.create(model="other", messages=HELLO)


async def test_stats_count_requests_per_model_and_path(sim, client, http):
    await client.chat.completions.create(model="a", messages=HELLO)
    await client.chat.completions.create(model="a", messages=HELLO, extra_headers={"x-trace": "t1"})
    await client.embeddings.create(model="b", input="x")
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="a", messages=HELLO, extra_headers=fault("status=500"))

    async with http.get(f"{sim.url}/sim/stats") as resp:
        stats = await resp.json()
    assert stats["total"] == 4
    assert stats["by_model"] == {"a": 3, "b": 1}
    assert stats["by_model_path"]["a"] == {"/v1/chat/completions": 3}
    assert stats["by_path"]["/v1/embeddings"] == 1
    assert stats["faults"] == {"status_500": 1}
    assert stats["last_request"]["b"]["body"]["input"] == "x"

    await http.post(f"{sim.url}/sim/reset")
    async with http.get(f"{sim.url}/sim/stats") as resp:
        assert (await resp.json())["total"] == 0
