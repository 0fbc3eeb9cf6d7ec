"""The passthrough provider's HTTP against raw-socket upstreams: what odd-but-legal and hostile servers send.

Each test runs ``OpenAICompatProvider`` (over ``providers/transport.py``) against a server on loopback
that writes exact bytes, and asserts what the caller got and what the upstream saw.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib

import brotli
import pytest
import zstandard

from gateway.core.errors import (
    UpstreamError,
    UpstreamProtocolError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.policy.models import ConnectionPool, TimeoutSettings
from gateway.providers.base import Timeouts
from gateway.providers.openai_compat import OpenAICompatProvider
from gateway.providers.registry import ProviderContext
from gateway.providers.transport import TransportSettings
from gateway.settings import Settings
from tests.upstream_support import Conn, call, completion, deployment, raw_upstream, response


def provider(base: str, **overrides: object) -> OpenAICompatProvider:
    return OpenAICompatProvider(deployment(base, **overrides), ProviderContext())


async def keep_answering(conn: Conn, answer=lambda req: response(completion("ok"))) -> None:
    while (req := await conn.request()) is not None:
        await conn.send(answer(req))


# -- interim responses and stale connections (the cross-tenant swap and the double POST) ------------


async def test_interim_1xx_responses_are_never_taken_for_the_answer() -> None:
    """Four teams in a row on one kept-alive connection each get their own answer, and the upstream
    sees each body exactly once (an interim response taken as final shifts every answer by one)."""

    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            team = req.body.decode().split('team-')[1][:1]
            await conn.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>; rel=preload\r\n\r\n")
            await asyncio.sleep(0.01)
            await conn.send(response(completion(f"answer for team {team}")))

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        for team in "ABCD":
            body = {"model": "m", "messages": [{"role": "user", "content": f"question from team-{team}"}]}
            reply = await p.complete(call(body))
            assert reply.parsed["choices"][0]["message"]["content"] == f"answer for team {team}"
        bodies = [r.body for r in up.requests]
        assert len(bodies) == 4 and len(set(bodies)) == 4
        await p.aclose()


async def test_concurrent_teams_with_interim_responses_each_get_their_own_answer() -> None:
    async def handler(conn: Conn) -> None:
        while (req := await conn.request()) is not None:
            team = req.body.decode().split('team-')[1][:1]
            await conn.send(b"HTTP/1.1 102 Processing\r\n\r\n")
            await conn.send(response(completion(f"answer for team {team}")))

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        teams = "ABCDEFGH" * 4

        async def ask(team: str) -> str:
            body = {"model": "m", "messages": [{"role": "user", "content": f"team-{team}"}]}
            return (await p.complete(call(body))).parsed["choices"][0]["message"]["content"]

        answers = await asyncio.gather(*(ask(t) for t in teams))
        assert answers == [f"answer for team {t}" for t in teams]
        assert len(up.requests) == len(teams)
        await p.aclose()


async def test_a_post_is_not_resent_when_the_connection_dies_after_the_request_arrived() -> None:
    """The upstream read the request, then the connection died before reply bytes: the request may have
    been processed, so it is never sent again on a fresh connection (the upstream sees it once)."""
    first = True

    async def handler(conn: Conn) -> None:
        nonlocal first
        while await conn.request() is not None:
            if first:
                first = False
                await conn.send(response(completion("one")))
                continue
            conn.writer.transport.abort()  # read it, answer nothing
            return

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        await p.complete(call())
        with pytest.raises(UpstreamError):
            await p.complete(call({"model": "m", "messages": [{"role": "user", "content": "second"}]}))
        await asyncio.sleep(0.2)
        assert sum(b"second" in r.body for r in up.requests) == 1
        await p.aclose()


async def test_an_idle_connection_the_server_closed_is_replaced_and_the_request_sent_once() -> None:
    async def handler(conn: Conn) -> None:
        req = await conn.request()
        assert req is not None
        await conn.send(response(completion("first")))
        await asyncio.sleep(0.05)  # a keep-alive timeout on the server side

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        assert (await p.complete(call())).parsed["choices"][0]["message"]["content"] == "first"
        await asyncio.sleep(0.3)
        body = {"model": "m", "messages": [{"role": "user", "content": "again"}]}
        assert (await p.complete(call(body))).parsed["choices"][0]["message"]["content"] == "first"
        assert sum(b"again" in r.body for r in up.requests) == 1
        assert up.connections == 2
        await p.aclose()


# -- framing and encodings ----------------------------------------------------------------------------


@pytest.mark.parametrize("head", [
    b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",
], ids=["http1.0", "connection-close"])
async def test_close_delimited_bodies_are_read_to_the_end(head: bytes) -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(head + completion("close-delimited"))
        conn.writer.close()

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        reply = await p.complete(call())
        assert reply.parsed["choices"][0]["message"]["content"] == "close-delimited"
        assert reply.usage.completion_tokens == 2
        await p.aclose()


@pytest.mark.parametrize("encoding,encode", [
    ("gzip", gzip.compress),
    ("br", brotli.compress),
    ("zstd", lambda data: zstandard.ZstdCompressor().compress(data)),
    ("deflate", zlib.compress),
])
async def test_compressed_answers_are_decoded(encoding: str, encode) -> None:
    async def handler(conn: Conn) -> None:
        await keep_answering(conn, lambda req: response(encode(completion("squeezed")),
                                                        headers=f"content-encoding: {encoding}\r\n"))

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        reply = await p.complete(call())
        assert reply.parsed["choices"][0]["message"]["content"] == "squeezed"
        assert reply.body == completion("squeezed")
        await p.aclose()


async def test_a_compressed_stream_is_decoded_event_by_event() -> None:
    events = b"".join(b'data: {"n":%d}\n\n' % i for i in range(3)) + b"data: [DONE]\n\n"

    async def handler(conn: Conn) -> None:
        await conn.request()
        compressor = zlib.compressobj(wbits=31)  # gzip framing, flushed per event
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
                        b"transfer-encoding: chunked\r\n\r\n")
        for event in events.split(b"\n\n")[:-1]:
            data = compressor.compress(event + b"\n\n") + compressor.flush(zlib.Z_SYNC_FLUSH)
            await conn.send(b"%x\r\n%s\r\n" % (len(data), data))
            await asyncio.sleep(0.01)
        tail = compressor.flush()
        await conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        stream = await p.open_stream(call(stream=True))
        received = stream.first + b"".join([item async for item in stream])
        assert received == events
        await stream.aclose()
        await p.aclose()


async def test_a_head_split_across_many_packets_is_assembled() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        raw = response(completion("split"))
        for i in range(0, len(raw), 7):
            await conn.send(raw[i:i + 7])
            await asyncio.sleep(0.001)

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        assert (await p.complete(call())).parsed["choices"][0]["message"]["content"] == "split"
        await p.aclose()


async def test_crlf_separated_stream_events_are_passed_on_byte_for_byte() -> None:
    events = b'data: {"a":1}\r\n\r\n: keep-alive\r\n\r\ndata: {"usage":{"prompt_tokens":1}}\r\n\r\ndata: [DONE]\r\n\r\n'

    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for i in range(0, len(events), 5):  # boundaries split across reads, CR and LF apart
            piece = events[i:i + 5]
            await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            await asyncio.sleep(0.002)
        await conn.send(b"0\r\n\r\n")

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        stream = await p.open_stream(call(stream=True))
        received = stream.first + b"".join([item async for item in stream])
        assert received == events
        await stream.aclose()
        await p.aclose()


async def test_ipv6_literal_base_url_reaches_the_server_with_a_bracketed_host() -> None:
    async with raw_upstream(keep_answering, host="::1") as up:
        p = provider(up.base)
        reply = await p.complete(call())
        assert reply.status == 200
        assert up.requests[0].header("host") == f"[::1]:{up.port}"
        assert up.requests[0].line.startswith("POST /v1/chat/completions ")
        await p.aclose()


async def test_user_and_password_in_api_base_become_basic_auth_and_never_reach_errors() -> None:
    async def handler(conn: Conn) -> None:
        await keep_answering(conn, lambda req: response(
            b'{"error":{"message":"bad creds ' + (req.header("authorization") or "").encode() + b' s3cr3t-pw"}}',
            status="400 Bad Request"))

    async with raw_upstream(handler) as up:
        base = up.base.replace("http://", "http://gw-user:s3cr3t-pw@")
        p = provider(base)
        with pytest.raises(UpstreamStatusError) as info:
            await p.complete(call())
        assert up.requests[0].header("authorization") == "Basic Z3ctdXNlcjpzM2NyM3QtcHc="
        assert "s3cr3t-pw" not in info.value.message and "Z3ctdXNlcjpzM2NyM3QtcHc=" not in info.value.message
        await p.aclose()


async def test_header_and_key_values_echoed_in_error_bodies_are_scrubbed() -> None:
    """An Azure-style ``api-key`` header and the api_key come back inside the upstream's error text."""

    async def handler(conn: Conn) -> None:
        await keep_answering(conn, lambda req: response(
            ('{"error":{"message":"key ' + (req.header("api-key") or "") + " and "
             + (req.header("authorization") or "") + ' refused for this model"}}').encode(),
            status="404 Not Found"))

    async with raw_upstream(handler) as up:
        p = provider(up.base, api_key="sk-live-abcdef123456", headers={"api-key": "azure-key-0987654321"})
        with pytest.raises(UpstreamStatusError) as info:
            await p.complete(call())
        message = info.value.message
        assert "refused for this model" in message
        assert "azure-key-0987654321" not in message and "sk-live-abcdef123456" not in message
        await p.aclose()


# -- caps: response size, connections, idle expiry ----------------------------------------------------


async def test_a_non_streamed_answer_over_the_cap_is_a_clear_502() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
        piece = b"x" * 65536
        try:
            for _ in range(10_000):  # 640 MB if nobody stops reading
                await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        except ConnectionError:
            pass

    async with raw_upstream(handler) as up:
        p = provider(up.base, max_response_bytes=256 * 1024)
        with pytest.raises(UpstreamProtocolError) as info:
            await p.complete(call())
        assert "'dep'" in info.value.message and "max_response_bytes" in info.value.message
        assert "262144" in info.value.message and info.value.status == 502
        await p.aclose()


async def test_an_announced_length_over_the_cap_is_refused_before_reading() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 999999999\r\n\r\n{")
        await asyncio.sleep(2)

    async with raw_upstream(handler) as up:
        p = provider(up.base, max_response_bytes=1 << 20)
        with pytest.raises(UpstreamProtocolError, match="999999999 bytes"):
            await p.complete(call())
        await p.aclose()


async def test_a_stream_without_event_separators_is_cut_at_the_event_bound() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        piece = b"data: " + b"y" * 8192 + b"\n"  # lines, never a blank one
        try:
            for _ in range(100_000):
                await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        except ConnectionError:
            pass

    async with raw_upstream(handler) as up:
        p = provider(up.base, max_response_bytes=64 * 1024 * 1024)
        with pytest.raises(UpstreamProtocolError, match="stream event over 4194304 bytes"):
            await p.open_stream(call(stream=True))
        await p.aclose()


async def test_a_stream_over_the_total_cap_ends_in_an_error() -> None:
    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        event = b'data: {"pad":"' + b"z" * 4000 + b'"}\n\n'
        try:
            for _ in range(10_000):
                await conn.send(b"%x\r\n%s\r\n" % (len(event), event))
        except ConnectionError:
            pass

    async with raw_upstream(handler) as up:
        p = provider(up.base, max_response_bytes=200_000)
        stream = await p.open_stream(call(stream=True))
        with pytest.raises(UpstreamProtocolError, match="max_response_bytes"):
            async for _ in stream:
                pass
        await stream.aclose()
        await p.aclose()


async def test_connections_are_capped_and_a_request_over_the_cap_fails_over() -> None:
    release = asyncio.Event()

    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            await release.wait()
            await conn.send(response(completion("ok")))

    async with raw_upstream(handler) as up:
        p = provider(up.base, connections=ConnectionPool(max_connections=2),
                     timeouts=TimeoutSettings(connect=0.5, first_byte=5))
        held = [asyncio.create_task(p.complete(call())) for _ in range(2)]
        await asyncio.sleep(0.2)
        with pytest.raises(UpstreamUnavailable, match="max_connections"):
            await p.complete(call())
        release.set()
        await asyncio.gather(*held)
        assert up.most_open == 2 and len(up.requests) == 2
        # Waiting requests are served as connections free up (backpressure, not failure).
        await asyncio.gather(*(p.complete(call()) for _ in range(6)))
        assert up.most_open == 2
        await p.aclose()


async def test_idle_connections_expire() -> None:
    closed = asyncio.Event()

    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(response(completion("ok")))
        if await conn.closed_by_client(within=5):
            closed.set()

    async with raw_upstream(handler) as up:
        p = provider(up.base, connections=ConnectionPool(idle_seconds=0.3))
        await p.complete(call())
        await asyncio.wait_for(closed.wait(), 4)
        await p.aclose()


# -- streams and health checks release their connection ----------------------------------------------


async def test_a_stream_left_early_closes_the_upstream_connection() -> None:
    left = asyncio.Event()

    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        event = b'data: {"n":1}\n\n'
        try:
            for _ in range(200):
                await conn.send(b"%x\r\n%s\r\n" % (len(event), event))
                await asyncio.sleep(0.02)
        except ConnectionError:
            left.set()
            return
        if await conn.closed_by_client(within=1):
            left.set()

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        stream = await p.open_stream(call(stream=True))
        await anext(aiter(stream))
        await stream.aclose()
        await asyncio.wait_for(left.wait(), 3)
        await p.aclose()


async def test_a_health_check_whose_body_stalls_fails_and_releases_the_connection() -> None:
    released = asyncio.Event()

    async def handler(conn: Conn) -> None:
        await conn.request()
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{")  # and then nothing
        if await conn.closed_by_client(within=5):
            released.set()

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        assert await p.check_health() is False
        await asyncio.wait_for(released.wait(), 3)
        assert up.open_connections == 0
        await p.aclose()


async def test_no_answer_within_first_byte_is_a_504_and_the_connection_is_dropped() -> None:
    dropped = asyncio.Event()

    async def handler(conn: Conn) -> None:
        await conn.request()  # and never answer
        if await conn.closed_by_client(within=5):
            dropped.set()

    async with raw_upstream(handler) as up:
        p = provider(up.base)
        with pytest.raises(UpstreamTimeout) as info:
            await p.complete(call(timeouts=Timeouts(connect=2, first_byte=0.3, idle=5, total=20)))
        assert info.value.status == 504 and "0.3s" in info.value.message
        await asyncio.wait_for(dropped.wait(), 3)
        await p.aclose()


async def test_params_are_body_defaults_the_client_overrides() -> None:
    async with raw_upstream(keep_answering) as up:
        p = provider(up.base, params={"top_k": 20, "temperature": 0.3})
        await p.complete(call({"model": "m", "messages": [], "temperature": 0.9}))
        import orjson

        sent = orjson.loads(up.requests[0].body)
        assert sent["top_k"] == 20 and sent["temperature"] == 0.9
        await p.aclose()


async def test_a_refused_connection_is_unavailable_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    from tests.servers import free_port

    p = provider(f"http://127.0.0.1:{free_port()}/v1")
    with caplog.at_level(logging.WARNING, logger="gateway.upstream"), pytest.raises(UpstreamUnavailable) as info:
        await p.complete(call(timeouts=Timeouts(connect=1, first_byte=2, idle=2, total=5)))
    assert "refused" in info.value.message.lower()
    assert any("refused" in r.getMessage().lower() for r in caplog.records)
    await p.aclose()


def test_the_default_upstream_cap_is_not_below_what_a_worker_accepts() -> None:
    """Every client connection a worker accepts can hold one upstream connection: with a lower default
    cap (512 once), a worker relaying 1,000 streams to one deployment made the rest wait for a connection
    and fail after `timeouts.connect` (found by the paced benchmark). `max_concurrency` is the limit to
    tune; the connection cap is a safety net."""
    assert ConnectionPool().max_connections >= Settings().max_connections
    assert TransportSettings().max_connections >= Settings().max_connections
