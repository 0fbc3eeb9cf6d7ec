"""Slow clients cannot starve the others: heads and bodies are bounded in time, connections in number.

Against a real gateway process: many connections dribble a request head one line at a time; the
gateway closes them once their head is late or when a new connection needs the room, and /healthz
on a fresh connection keeps answering throughout. Latencies are written to tests/out for the record,
never asserted tightly.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers

POLICIES = Path(__file__).resolve().parents[1] / "policies"
OUT = Path(__file__).resolve().parents[1] / "out"


@pytest.fixture(scope="module")
def guarded(sim_url: str) -> Iterator[str]:
    env = {"SIM_URL": sim_url, "GATEWAY_HEADER_TIMEOUT": "2", "GATEWAY_BODY_TIMEOUT": "2",
           "GATEWAY_MAX_CONNECTIONS": "300", "GATEWAY_ACCESS_LOG": "false"}
    with servers.gateway(POLICIES / "e2e.yaml", env=env) as url:
        yield url


async def _dribble(port: int, lines: int, every: float) -> str:
    """Open a connection and send a request head one header line at a time; how did it end?"""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused"
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        for i in range(lines):
            await asyncio.sleep(every)
            writer.write(b"x-slow-%d: y\r\n" % i)
            await writer.drain()
            if reader.at_eof():
                return "closed"
        return "survived"
    except (ConnectionError, OSError):
        return "closed"
    finally:
        writer.close()


async def _health_latencies(base: str, seconds: float) -> list[float]:
    latencies = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            resp = await client.get(f"{base}/healthz")
            assert resp.status_code == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)
    return latencies


async def test_slow_heads_are_closed_and_health_checks_keep_answering(guarded: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port = int(guarded.rsplit(":", 1)[1])
    slow = [asyncio.ensure_future(_dribble(port, lines=8, every=1.0)) for _ in range(1000)]
    await asyncio.sleep(0.5)
    latencies = await _health_latencies(guarded, 6.0)
    outcomes = await asyncio.gather(*slow)
    assert outcomes.count("survived") == 0, "no connection may take 8 s to send its head"
    assert len(latencies) > 20
    OUT.mkdir(exist_ok=True)
    latencies.sort()
    (OUT / "slow-clients-figures.json").write_text(json.dumps({
        "slow_connections": len(slow), "closed": outcomes.count("closed"), "refused": outcomes.count("refused"),
        "health_checks": len(latencies), "health_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "health_max_ms": round(latencies[-1] * 1000, 2), "header_timeout_s": 2, "max_connections": 300,
    }, indent=2))


async def test_a_trickled_body_is_a_408(guarded: str) -> None:
    port = int(guarded.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 b"content-length: 1000\r\n\r\n{\"model\":")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 408")
    writer.close()
