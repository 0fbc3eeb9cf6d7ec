"""CPU per upstream POST for candidate HTTP client libraries, against the benchmark's nginx mock.

Run: ``.venv/bin/python bench/upstream_clients.py [--rounds 5] [--requests 2000]``. Writes
``bench/out/upstream_clients.json`` and prints a table.

Each client sends the benchmark's ~1.3 KB chat body to nginx (``bench/harness/nginx.py``'s mock, on a
loopback port, one worker) and reads the ~600-byte answer whole, first one request at a time, then 32
concurrent. The figure is the client process's CPU time (``time.process_time``: every thread, so a
library that does its work in a background runtime thread pays for it) divided by the requests, the
median of interleaved rounds (clients take turns, so a busy moment of the shared machine hits all).
It also checks each client for what disqualified the cheapest library: whether cancelling a request
that waits for its answer closes the connection (``closes_on_cancel``).

Candidates: the gateway's transport as it is in the working tree (``gateway.providers.transport``),
pyreqwest (Rust reqwest/hyper), aiohttp, httpx, and -- from a git revision, because it is no longer in
the tree -- the hand-written httptools pool that served upstream calls before (``--baseline-ref``).
pyreqwest is not a dependency of the project: ``pip install pyreqwest`` into ``.venv`` to include it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from harness import bodies  # noqa: E402
from harness.nginx import JSON_PATH, mock_config, nginx_binary  # noqa: E402
from harness.procs import Server  # noqa: E402

Send = Callable[[], Awaitable[bytes]]
Factory = Callable[[str], Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body() -> bytes:
    return bodies.request_body("bench-json", stream=False)


def _old_pool_source(ref: str) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:gateway/providers/http1.py"],
                          check=True, capture_output=True).stdout


async def _http1_pool(base: str, ref: str) -> tuple[Send, Callable[[], Awaitable[None]]]:
    source = _old_pool_source(ref)
    path = Path(tempfile.mkdtemp()) / "old_http1.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("old_http1", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pool = module.Pool(base, {"content-type": "application/json"})
    body = _body()

    async def send() -> bytes:
        resp = await pool.request("POST", JSON_PATH, body)
        data = await resp.read()
        resp.release()
        return data

    return send, pool.aclose


async def _pyreqwest(base: str) -> tuple[Send, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().default_headers({"content-type": "application/json"}).build()
    url, body = base + JSON_PATH, _body()

    async def send() -> bytes:
        resp = await client.post(url).body_bytes(body).build().send()
        return bytes(await resp.bytes())

    return send, client.close


async def _aiohttp(base: str) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(headers={"content-type": "application/json"})
    url, body = base + JSON_PATH, _body()

    async def send() -> bytes:
        async with session.post(url, data=body) as resp:
            return await resp.read()

    return send, session.close


async def _aiohttp_lean(base: str) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=512, limit_per_host=512, keepalive_timeout=60, ttl_dns_cache=None)
    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                    skip_auto_headers=("User-Agent",), headers={"content-type": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=None))
    url, body = aiohttp.client.URL(base + JSON_PATH), _body()

    async def send() -> bytes:
        async with session.post(url, data=body) as resp:
            return await resp.read()

    return send, session.close


async def _httpx(base: str) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(headers={"content-type": "application/json"},
                               limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
    url, body = base + JSON_PATH, _body()

    async def send() -> bytes:
        resp = await client.post(url, content=body)
        return resp.content

    return send, client.aclose


async def _gateway_transport(base: str) -> tuple[Send, Callable[[], Awaitable[None]]]:
    from gateway.providers.egress import EgressSettings
    from gateway.providers.transport import Transport

    transport = Transport(base, headers={"content-type": "application/json"}, egress=EgressSettings())
    body = _body()

    async def send() -> bytes:
        async with await transport.send("POST", JSON_PATH, body) as resp:
            return await resp.read_all(1 << 20)

    return send, transport.aclose


async def closes_on_cancel(make: Factory) -> bool:
    """Whether cancelling a request that is waiting for its answer closes the connection (a client that
    hangs up must stop the model server's work). A loopback server reads the request, answers nothing
    for 3 s, and watches its socket."""
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        try:
            async with asyncio.timeout(3):
                while await reader.read(65536):
                    pass
            closed.set()
        except (TimeoutError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    send, close = await make(f"http://127.0.0.1:{port}")
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(send(), 0.2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), 1.5)
        return closed.is_set()
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await close()


async def _measure(send: Send, requests: int, concurrency: int) -> float:
    """CPU seconds per request for ``requests`` POSTs, ``concurrency`` at a time."""
    for _ in range(50):
        await send()  # warm the pool
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            data = await send()
            if b"chat.completion" not in data:
                raise RuntimeError(f"unexpected answer {data[:80]!r}")

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - started) / requests


async def _run(args: argparse.Namespace, base: str) -> tuple[dict[str, dict[str, list[float]]], dict[str, bool]]:
    factories: dict[str, Callable[[str], Awaitable[tuple[Send, Callable[[], Awaitable[None]]]]]] = {
        "gateway transport": _gateway_transport,
        f"httptools pool ({args.baseline_ref})": lambda b: _http1_pool(b, args.baseline_ref),
        "pyreqwest": _pyreqwest,
        "aiohttp": _aiohttp,
        "aiohttp, lean session": _aiohttp_lean,
        "httpx": _httpx,
    }
    chosen = {k: v for k, v in factories.items() if not args.only or any(o in k for o in args.only.split(","))}
    for name, module in (("pyreqwest", "pyreqwest"), ("httpx", "httpx")):
        if name in chosen and importlib.util.find_spec(module) is None:
            print(f"{name}: not installed (pip install {name}), left out", file=sys.stderr)
            del chosen[name]
    cancel = {name: await closes_on_cancel(make) for name, make in chosen.items()}
    results: dict[str, dict[str, list[float]]] = {k: {"serial": [], "c32": []} for k in chosen}
    clients = {name: await make(base) for name, make in chosen.items()}
    try:
        for _ in range(args.rounds):
            for name, (send, _close) in clients.items():
                results[name]["serial"].append(await _measure(send, args.requests, 1))
                results[name]["c32"].append(await _measure(send, args.requests * 2, 32))
    finally:
        for _send, close in clients.values():
            await close()
    return results, cancel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--baseline-ref", default="1588690", help="git revision holding providers/http1.py")
    parser.add_argument("--only", default="", help="comma-separated name fragments of the clients to run")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    prefix = Path(tempfile.mkdtemp(prefix="bench-clients-"))
    (prefix / "mock.conf").write_text(mock_config(prefix, port))
    # The client process and nginx each get a core of their own where there are two.
    cores = sorted(os.sched_getaffinity(0))
    pin = ["taskset", "-c", str(cores[-1])] if len(cores) > 1 else []
    nginx = Server("nginx", [*pin, nginx_binary(), "-p", str(prefix), "-c", str(prefix / "mock.conf")],
                   prefix / "nginx.log")
    try:
        nginx.wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=20)
        if len(cores) > 1:
            os.sched_setaffinity(0, {cores[0]})
        results, cancel = uvloop.run(_run(args, f"http://127.0.0.1:{port}"))
    finally:
        nginx.stop()
    table = {name: {kind: statistics.median(v) * 1e6 for kind, v in kinds.items()} for name, kinds in results.items()}
    (out / "upstream_clients.json").write_text(json.dumps({"us_per_post": table, "closes_on_cancel": cancel,
                                                            "raw_seconds": results,
                                                            "rounds": args.rounds, "requests": args.requests},
                                                           indent=2))
    print(f"{'client':36} {'1 at a time':>12} {'32 concurrent':>14} {'cancel closes':>14}"
          f"   (CPU µs per POST, median of {args.rounds})")
    for name, row in table.items():
        print(f"{name:36} {row['serial']:>12.1f} {row['c32']:>14.1f} {'yes' if cancel[name] else 'NO':>14}")


if __name__ == "__main__":
    main()
