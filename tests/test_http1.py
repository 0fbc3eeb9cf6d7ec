"""The upstream HTTP/1.1 client against real servers on loopback (aiohttp and a raw socket server)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from gateway.providers.http1 import ConnectionClosed, MalformedResponse, Pool


@pytest.fixture
async def upstream():
    seen: list[tuple[str, str, bytes, str]] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append((request.method, request.path, body, request.headers.get("authorization", "")))
        if request.path.endswith("/chunked"):
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(3):
                await resp.write(f"data: {i}\n\n".encode())
            await resp.write_eof()
            return resp
        return web.json_response({"path": request.path, "len": len(body)}, headers={"retry-after": "3"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", seen
    await runner.cleanup()


async def test_requests_reuse_one_keep_alive_connection(upstream) -> None:
    base, seen = upstream
    pool = Pool(base, {"authorization": "Bearer k"})
    for i in range(5):
        resp = await pool.request("POST", "/chat/completions", b'{"n": %d}' % i)
        assert resp.status == 200 and resp.headers["retry-after"] == "3"
        assert (await resp.read()).startswith(b'{"path": "/v1/chat/completions"')
        resp.release()
    assert len(pool._idle) == 1, "one connection, reused"
    assert seen[-1] == ("POST", "/v1/chat/completions", b'{"n": 4}', "Bearer k")
    await pool.aclose()


async def test_chunked_body_arrives_decoded_in_pieces(upstream) -> None:
    base, _ = upstream
    pool = Pool(base, {})
    resp = await pool.request("POST", "/chunked", b"{}")
    pieces = []
    while chunk := await resp.readany():
        pieces.append(chunk)
    assert b"".join(pieces) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    resp.release()
    assert len(pool._idle) == 1
    await pool.aclose()


async def test_an_idle_connection_closed_by_the_server_is_replaced(upstream) -> None:
    base, seen = upstream
    pool = Pool(base, {})
    resp = await pool.request("GET", "/a")
    await resp.read()
    resp.release()
    pool._idle[0].transport.close()  # as a server's keep-alive timeout would
    await asyncio.sleep(0.01)
    resp = await pool.request("GET", "/b")
    assert resp.status == 200 and seen[-1][1] == "/v1/b"
    await resp.read()
    resp.release()
    await pool.aclose()


async def _raw_server(answer: bytes) -> tuple[asyncio.base_events.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_broken_and_cut_answers_raise() -> None:
    server, port = await _raw_server(b"NOT HTTP AT ALL\r\n\r\n")
    with pytest.raises(MalformedResponse):
        await Pool(f"http://127.0.0.1:{port}", {}).request("GET", "/")
    server.close()
    server, port = await _raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
    resp = await Pool(f"http://127.0.0.1:{port}", {}).request("GET", "/")
    with pytest.raises(ConnectionClosed):
        await resp.read()
    server.close()


async def test_refused_connection_is_an_os_error() -> None:
    server, port = await _raw_server(b"")
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError):
        await Pool(f"http://127.0.0.1:{port}", {}).request("GET", "/", connect_timeout=1)
