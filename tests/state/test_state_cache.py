"""Response cache: canonical keys, eligibility, isolation (real Redis and in-process), stream <-> completion."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web

from gateway.core.types import CacheDirective
from gateway.simulator.server import SimulatorServer
from gateway.state.backend import StateBackend
from gateway.state.cache import (
    ResponseCache,
    StreamCapture,
    allowed_hostings,
    cache_key,
    cacheable,
    completion_from_stream,
    request_mode,
    storable,
    stream_from_completion,
)
from gateway.state.memory import MemoryBackend
from tests.state_support import redis_backend

ON = CacheDirective(enabled=True, ttl_seconds=60)
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "temperature": 0}


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[StateBackend]:
    if request.param == "memory":
        yield MemoryBackend()
    else:
        async with redis_backend() as b:
            yield b


# ---- canonical key


@pytest.mark.parametrize(
    ("change", "same"),
    [
        ({"stream": True, "stream_options": {"include_usage": True}}, True),
        ({"user": "u-1", "safety_identifier": "s"}, True),
        ({"metadata": {"trace": "x"}, "store": True, "service_tier": "flex"}, True),
        ({"prompt_cache_key": "k"}, True),
        ({"temperature": 0.0}, True),
        ({"temperature": 0.2}, False),
        ({"n": 2}, False),
        ({"seed": 7}, False),
        ({"max_tokens": 5}, False),
        ({"logprobs": True}, False),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, False),
        ({"response_format": {"type": "json_object"}}, False),
        ({"model": "other"}, False),
        ({"messages": [{"role": "user", "content": "hello!"}]}, False),
        ({"top_k": 5}, False),  # unknown fields may change the answer: they stay in the key
    ],
)
def test_key_ignores_only_fields_that_cannot_change_the_answer(change: dict[str, Any], same: bool) -> None:
    base = cache_key("chat", BODY, team="t", data_class="internal")
    assert (cache_key("chat", {**BODY, **change}, team="t", data_class="internal") == base) is same


def test_key_is_independent_of_key_order_at_every_level() -> None:
    a = {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "x"}]}
    b = {"messages": [{"content": "x", "role": "user"}], "temperature": 0, "model": "m"}
    assert cache_key("chat", a, team="t", data_class="internal") == cache_key("chat", b, team="t", data_class="internal")


def test_key_is_scoped_by_endpoint_team_and_data_class() -> None:
    keys = {
        cache_key("chat", BODY, team="a", data_class="internal"),
        cache_key("chat", BODY, team="b", data_class="internal"),
        cache_key("chat", BODY, team="a", data_class="confidential"),
        cache_key("completions", BODY, team="a", data_class="internal"),
    }
    assert len(keys) == 4


@pytest.mark.parametrize(
    ("body", "directive", "expected"),
    [
        ({"temperature": 0}, ON, True),
        ({"temperature": 0.0}, ON, True),
        ({"seed": 3}, ON, True),
        ({"seed": 3, "temperature": 1.2}, ON, True),
        ({}, ON, False),
        ({"temperature": 0.7}, ON, False),
        ({"seed": True}, ON, False),
        ({"temperature": False}, ON, False),
        ({"temperature": 0.7}, CacheDirective(enabled=True, ttl_seconds=60, allow_nondeterministic=True), True),
        ({"temperature": 0}, CacheDirective(enabled=False, ttl_seconds=60), False),
        ({"temperature": 0}, CacheDirective(enabled=True, ttl_seconds=0), False),
    ],
)
def test_cacheable(body: dict[str, Any], directive: CacheDirective, expected: bool) -> None:
    assert cacheable(body, directive) is expected


@pytest.mark.parametrize(
    ("headers", "status", "read", "write"),
    [
        ({}, "lookup", True, True),
        ({"cache-control": "no-cache"}, "no-cache", False, True),
        ({"cache-control": "max-age=0, No-Cache"}, "no-cache", False, True),
        ({"cache-control": "no-store"}, "no-store", False, False),
        ({"x-gateway-cache": "bypass"}, "bypass", False, False),
    ],
)
def test_plan_honours_request_headers(headers: dict[str, str], status: str, read: bool, write: bool) -> None:
    plan = ResponseCache(MemoryBackend()).plan("chat", BODY, headers, ON, team="t", data_class="internal")
    assert (plan.status, plan.read, plan.write) == (status, read, write)
    assert request_mode(headers) == (None if status == "lookup" else status)


def test_plan_disabled_and_uncacheable() -> None:
    cache = ResponseCache(MemoryBackend())
    assert cache.plan("chat", BODY, {}, CacheDirective(), team="t", data_class="internal").status == "disabled"
    plan = cache.plan("chat", {**BODY, "temperature": 1}, {}, ON, team="t", data_class="internal")
    assert (plan.status, plan.key, plan.read, plan.write) == ("uncacheable", None, False, False)


def test_allowed_hostings() -> None:
    assert allowed_hostings({"hosting": "self"}) == {"self"}
    assert allowed_hostings({"origin": {"not_in": ["CN"]}}) == {"self", "vendor"}


# ---- store and lookup, on both backends


def _completion(text: str = "hi") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _plan(cache: ResponseCache, team: str = "a", data_class: str = "internal", headers: dict[str, str] | None = None):  # noqa: ANN202
    return cache.plan("chat", BODY, headers or {}, ON, team=team, data_class=data_class)


async def test_hit_after_store(backend: StateBackend) -> None:
    cache = ResponseCache(backend)
    plan = _plan(cache)
    assert await cache.lookup(plan, {"self", "vendor"}) is None
    assert await cache.store(plan, hosting="self", deployment="qwen-local", completion=_completion())
    entry = await cache.lookup(plan, {"self", "vendor"})
    assert entry is not None
    assert (entry.hosting, entry.deployment, entry.completion) == ("self", "qwen-local", _completion())


async def test_tenant_and_data_class_isolation(backend: StateBackend) -> None:
    cache = ResponseCache(backend)
    await cache.store(_plan(cache, "a"), hosting="self", deployment="d", completion=_completion("team a"))
    assert await cache.lookup(_plan(cache, "b"), {"self", "vendor"}) is None
    assert await cache.lookup(_plan(cache, "a", "confidential"), {"self", "vendor"}) is None
    await cache.store(_plan(cache, "a", "confidential"), hosting="self", deployment="d", completion=_completion("conf"))
    internal = await cache.lookup(_plan(cache, "a"), {"self", "vendor"})
    confidential = await cache.lookup(_plan(cache, "a", "confidential"), {"self", "vendor"})
    assert internal is not None and confidential is not None
    assert internal.completion["choices"][0]["message"]["content"] == "team a"
    assert confidential.completion["choices"][0]["message"]["content"] == "conf"


async def test_vendor_entry_never_answers_a_self_only_request(backend: StateBackend) -> None:
    cache = ResponseCache(backend)
    plan = _plan(cache)
    await cache.store(plan, hosting="vendor", deployment="gpt-4o", completion=_completion("vendor"))
    assert await cache.lookup(plan, {"self"}) is None
    assert await cache.lookup(plan, set()) is None
    vendor = await cache.lookup(plan, {"self", "vendor"})
    assert vendor is not None and vendor.hosting == "vendor"
    # A self-produced answer to the same request is kept apart and preferred.
    await cache.store(plan, hosting="self", deployment="qwen", completion=_completion("self"))
    own = await cache.lookup(plan, {"self"})
    assert own is not None and own.completion["choices"][0]["message"]["content"] == "self"
    assert (await cache.lookup(plan, {"vendor"})).hosting == "vendor"  # type: ignore[union-attr]


async def test_deployment_filter(backend: StateBackend) -> None:
    cache = ResponseCache(backend)
    plan = _plan(cache)
    await cache.store(plan, hosting="vendor", deployment="gpt-4o", completion=_completion())
    assert await cache.lookup(plan, {"vendor"}, deployments={"claude"}) is None
    assert await cache.lookup(plan, {"vendor"}, deployments={"claude", "gpt-4o"}) is not None


async def test_no_cache_writes_but_does_not_read_and_no_store_does_neither(backend: StateBackend) -> None:
    cache = ResponseCache(backend)
    no_cache = _plan(cache, headers={"cache-control": "no-cache"})
    assert await cache.store(no_cache, hosting="self", deployment="d", completion=_completion("fresh"))
    assert await cache.lookup(no_cache, {"self"}) is None
    assert (await cache.lookup(_plan(cache), {"self"})).completion["choices"][0]["message"]["content"] == "fresh"  # type: ignore[union-attr]
    no_store = _plan(cache, headers={"cache-control": "no-store"})
    assert not await cache.store(no_store, hosting="self", deployment="d", completion=_completion("x"))


@pytest.mark.parametrize(
    "answer",
    [
        {"error": {"message": "boom", "type": "server_error"}},
        {**_completion(), "choices": []},
        {**_completion(), "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": None}]},
        "not a dict",
        None,
    ],
)
async def test_errors_and_unfinished_answers_are_never_stored(backend: StateBackend, answer: Any) -> None:
    cache = ResponseCache(backend)
    assert not storable(answer)
    assert not await cache.store(_plan(cache), hosting="self", deployment="d", completion=answer)
    assert await cache.lookup(_plan(cache), {"self"}) is None


async def test_oversized_entries_are_not_stored() -> None:
    cache = ResponseCache(MemoryBackend(), max_entry_bytes=200)
    assert not await cache.store(_plan(cache), hosting="self", deployment="d", completion=_completion("x" * 500))


async def test_entries_expire() -> None:
    now = [1000.0]
    cache = ResponseCache(MemoryBackend(clock=lambda: now[0]))
    plan = _plan(cache)
    await cache.store(plan, hosting="self", deployment="d", completion=_completion())
    now[0] += 59
    assert await cache.lookup(plan, {"self"}) is not None
    now[0] += 2
    assert await cache.lookup(plan, {"self"}) is None


async def test_redis_entries_carry_the_ttl() -> None:
    async with redis_backend() as backend:
        cache = ResponseCache(backend)
        plan = _plan(cache)
        await cache.store(plan, hosting="self", deployment="d", completion=_completion())
        ttl = await backend._redis.ttl(f"{backend.prefix}cache:{plan.key}:self")
        assert 55 <= ttl <= 60


# ---- stream <-> completion, against the simulator

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]
MESSAGES = [{"role": "user", "content": "What is the weather in Paris, and the time?"}]
CHAT_CASES = {
    "plain": {"seed": 1},
    "n2_logprobs": {"seed": 2, "n": 2, "logprobs": True, "top_logprobs": 3},
    "tools_n2": {"seed": 3, "n": 2, "tools": TOOLS},
    "one_tool": {"seed": 4, "tools": TOOLS, "parallel_tool_calls": False},
    "json_schema": {"seed": 5, "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "number"}}}}}},
    "length": {"seed": 6, "max_tokens": 3},
    "stop": {"seed": 7, "stop": [" from"]},
}


def _events(raw: bytes) -> list[bytes]:
    return [block + b"\n\n" for block in raw.split(b"\n\n") if block.strip()]


async def _both(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    async with session.post(url, json=body) as r:
        assert r.status == 200
        full = await r.json()
    async with session.post(url, json={**body, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.status == 200
        events = _events(await r.read())
    return full, events


def _comparable(completion: dict[str, Any]) -> dict[str, Any]:
    """Without id and created (fresh per response) and the simulator's non-stream-only ``annotations: []``."""
    c = copy.deepcopy(completion)
    del c["id"], c["created"]
    for choice in c["choices"]:
        if choice.get("message", {}).get("annotations") == []:
            del choice["message"]["annotations"]
    return c


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(ttft_ms=0, output_tokens=24) as server:
        yield server


@pytest.mark.parametrize("case", sorted(CHAT_CASES))
async def test_chat_stream_folds_into_the_non_stream_answer(sim: SimulatorServer, case: str) -> None:
    body = {"model": "sim-model", "messages": MESSAGES, **CHAT_CASES[case]}
    async with aiohttp.ClientSession() as session:
        full, events = await _both(session, sim.openai_base_url + "/chat/completions", body)
    folded = completion_from_stream(events)
    assert folded is not None
    assert _comparable(folded) == _comparable(full)
    # The simulator (like OpenAI) adds ``annotations: []`` only to non-stream messages; nothing else differs.
    assert all(c["message"].get("annotations") == [] for c in full["choices"])
    # Round trip: stream -> completion -> stream -> completion is stable, with and without usage.
    assert completion_from_stream(stream_from_completion(folded, include_usage=True)) == folded
    without_usage = completion_from_stream(stream_from_completion(folded, include_usage=False))
    assert without_usage == {k: v for k, v in folded.items() if k != "usage"}
    # The non-stream answer itself survives a replay unchanged.
    assert completion_from_stream(stream_from_completion(full, include_usage=True)) == full


@pytest.mark.parametrize("extra", [{"seed": 1, "n": 2}, {"seed": 2, "echo": True}, {"seed": 3, "max_tokens": 4}])
async def test_text_completion_stream_folds_into_the_non_stream_answer(sim: SimulatorServer, extra: dict[str, Any]) -> None:
    body = {"model": "sim-model", "prompt": "Say something", **extra}
    async with aiohttp.ClientSession() as session:
        full, events = await _both(session, sim.openai_base_url + "/completions", body)
    folded = completion_from_stream(events)
    assert folded is not None and folded["object"] == "text_completion"
    assert _comparable(folded) == _comparable(full)
    assert completion_from_stream(stream_from_completion(folded, include_usage=True)) == folded


async def test_text_completion_logprobs_fold_and_replay(sim: SimulatorServer) -> None:
    """Lists are concatenated. The simulator restarts ``text_offset`` at 0 in every chunk, so only that differs."""
    body = {"model": "sim-model", "prompt": "Say something", "seed": 4, "logprobs": 2}
    async with aiohttp.ClientSession() as session:
        full, events = await _both(session, sim.openai_base_url + "/completions", body)
    folded = completion_from_stream(events)
    assert folded is not None
    for got, want in zip(folded["choices"], full["choices"], strict=True):
        assert {k: v for k, v in got["logprobs"].items() if k != "text_offset"} == {
            k: v for k, v in want["logprobs"].items() if k != "text_offset"
        }
        assert got["text"] == want["text"]
    assert completion_from_stream(stream_from_completion(full, include_usage=True)) == full


def _replay_checks(events: list[bytes], n: int, include_usage: bool) -> list[dict[str, Any]]:
    assert events[-1] == b"data: [DONE]\n\n"
    chunks = []
    for event in events[:-1]:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n") and event.count(b"\n\n") == 1
        chunks.append(orjson.loads(event[6:]))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(len(c["choices"]) == 1 for c in chunks if c["choices"])
    for i in range(n):
        mine = [c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == i]
        assert mine[0]["delta"]["role"] == "assistant"
        assert mine[-1]["finish_reason"] is not None
        assert all(m["finish_reason"] is None for m in mine[:-1])
    if include_usage:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
        assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    else:
        assert all("usage" not in c for c in chunks)
    return chunks


async def test_replayed_stream_is_well_formed(sim: SimulatorServer) -> None:
    body = {"model": "sim-model", "messages": MESSAGES, **CHAT_CASES["n2_logprobs"]}
    async with aiohttp.ClientSession() as session:
        full, _ = await _both(session, sim.openai_base_url + "/chat/completions", body)
    for include_usage in (True, False):
        chunks = _replay_checks(stream_from_completion(full, include_usage), n=2, include_usage=include_usage)
        assert len(chunks) > 8  # content arrives in several chunks
        assert {c["id"] for c in chunks} == {full["id"]}
        assert {c["system_fingerprint"] for c in chunks} == {"fp_simulator"}


async def test_openai_sdk_reads_a_replayed_stream(sim: SimulatorServer) -> None:
    """Serve a cached tool-calling answer as SSE and let the official SDK assemble it."""
    body = {"model": "sim-model", "messages": MESSAGES, **CHAT_CASES["tools_n2"]}
    async with aiohttp.ClientSession() as session:
        full, _ = await _both(session, sim.openai_base_url + "/chat/completions", body)

    async def serve(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for event in stream_from_completion(full, include_usage=True):
            await response.write(event)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        async with client.chat.completions.stream(model="sim-model", messages=MESSAGES) as stream:  # type: ignore[arg-type]
            final = await stream.get_final_completion()
        await client.close()
    finally:
        await runner.cleanup()
    assert final.usage is not None and final.usage.total_tokens == full["usage"]["total_tokens"]
    for got, want in zip(final.choices, full["choices"], strict=True):
        assert got.finish_reason == want["finish_reason"]
        calls = [(c.id, c.function.name, c.function.arguments) for c in got.message.tool_calls or []]
        assert calls == [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in want["message"]["tool_calls"]]


@pytest.mark.parametrize("fault", ["truncate_after=5", "reset_after=5", "malformed_after=3"])
async def test_broken_streams_are_never_folded(sim: SimulatorServer, fault: str) -> None:
    body = {"model": "sim-model", "messages": MESSAGES, "seed": 1, "stream": True}
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(sim.openai_base_url + "/chat/completions", json=body, headers={"x-sim-fault": fault}) as r:
                raw = await r.read()
        except aiohttp.ClientPayloadError:
            raw = b"data: {\"partial\": true}\n\n"
    assert completion_from_stream(_events(raw)) is None


@pytest.mark.parametrize(
    "events",
    [
        [],
        [b"data: [DONE]\n\n"],
        [b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n', b"data: [DONE]\n\n"],
        [b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n'],
        [b'data: {"error":{"message":"upstream failed","type":"server_error"}}\n\n', b"data: [DONE]\n\n"],
        [b'event: error\ndata: {"message":"x"}\n\n', b"data: [DONE]\n\n"],
    ],
    ids=["empty", "only-done", "no-finish", "no-done", "error-payload", "error-event"],
)
def test_incomplete_or_failed_streams_fold_to_none(events: list[bytes]) -> None:
    assert completion_from_stream(events) is None


def test_fold_handles_provider_variants() -> None:
    """CRLF framing, split events, comments, reasoning text, names repeated per fragment, ids without index."""
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
        return orjson.dumps({**head, "choices": [choice]})

    call = {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a"'}}
    chunks = [
        chunk({"role": "assistant", "reasoning_content": "think "}),
        chunk({"reasoning_content": "hard"}),
        chunk({"tool_calls": [call]}),
        chunk({"tool_calls": [{"function": {"name": "f", "arguments": ":1}"}}]}),
        orjson.dumps({**head, "obfuscation": "xyz", "choices": [
            {"index": 0, "delta": {}, "finish_reason": "tool_calls", "stop_reason": None}]}),
    ]
    raw = b": keep-alive\r\n\r\n" + b"".join(b"data: " + c + b"\r\n\r\n" for c in chunks) + b"data: [DONE]\r\n\r\n"
    events = [raw[:37], raw[37:200], raw[200:]]  # event boundaries need not match chunk boundaries
    folded = completion_from_stream(events)
    assert folded is not None
    message = folded["choices"][0]["message"]
    assert message["reasoning_content"] == "think hard"
    assert message["tool_calls"] == [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]
    assert folded["choices"][0]["finish_reason"] == "tool_calls" and "stop_reason" in folded["choices"][0]
    assert "obfuscation" not in folded
    assert completion_from_stream(stream_from_completion(folded, include_usage=False)) == folded


def test_round_trip_of_rich_messages() -> None:
    completion = {
        "id": "x", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": None,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "", "refusal": "I can't help with that.",
                                     "annotations": [{"type": "url_citation", "url_citation": {"url": "u"}}],
                                     "reasoning_content": "because", "audio": None},
             "logprobs": {"content": [], "refusal": [{"token": "I", "logprob": -0.1}]}, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": "héllo wörld ✓ " * 20, "refusal": None},
             "logprobs": {"content": [{"token": "h", "logprob": -1.0}], "refusal": None}, "finish_reason": "length"},
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }
    assert completion_from_stream(stream_from_completion(completion, include_usage=True)) == completion


def test_stream_capture_limits_size() -> None:
    events = stream_from_completion(_completion("x" * 100), include_usage=True)
    small = StreamCapture(max_bytes=50)
    big = StreamCapture()
    for event in events:
        small.add(event)
        big.add(event)
    assert small.overflow and small.completion() is None
    assert big.completion() == _completion("x" * 100)
