"""Cache-hit latency against a miss, through the gateway with its cache in a real Redis.

Run: .venv/bin/python bench/cache_hit.py [--requests N] [--ttft-ms MS] [--redis-url URL]

Starts the upstream simulator (with the given time to first token) and a gateway whose policy caches
deterministic requests in Redis, then sends N distinct requests twice each: the first is a miss (goes
upstream, then fills the cache), the second a hit. Prints p50/p99 of both, non-streamed and streamed
(a streamed hit is replayed from the stored answer).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from percentile import percentile  # bench/percentile.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import servers  # noqa: E402


async def _run(url: str, n: int, stream: bool) -> tuple[list[float], list[float], int]:
    miss: list[float] = []
    hit: list[float] = []
    hits_seen = 0
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            body = {"model": "cached", "temperature": 0, "stream": stream,
                    "messages": [{"role": "user", "content": f"question {i} at {time.time()}"}]}
            for bucket in (miss, hit):
                t0 = time.perf_counter()
                async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
                    await resp.read()
                    bucket.append((time.perf_counter() - t0) * 1000)
                    hits_seen += resp.headers.get("x-gateway-cache") == "hit"
                await asyncio.sleep(0.01)  # the fill is written behind the response
    return miss, hit, hits_seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--ttft-ms", type=float, default=20)
    parser.add_argument("--redis-url", help="a Redis of your own to use, whose database is emptied first "
                        "(default: a redis-server started for the run on a free port)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.redis_url:
            subprocess.run(["redis-cli", "-u", args.redis_url, "flushdb"], check=True, capture_output=True)
        else:
            args.redis_url = stack.enter_context(_private_redis())
        _measure(args)


@contextlib.contextmanager
def _private_redis() -> Iterator[str]:
    port = servers.free_port()
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        servers.stop(proc)


def _measure(args: argparse.Namespace) -> None:
    with servers.simulator(ttft_ms=args.ttft_ms, output_tokens=64) as sim, tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "p.yaml"
        policy.write_text(f"""
name: cache-bench
defaults: {{cache: {{enabled: true, ttl_seconds: 600}}}}
deployments:
  sim: {{type: vllm, model: qwen, api_base: "{sim}/v1", hosting: self}}
models:
  cached: {{deployments: [sim]}}
""")
        env = {"GATEWAY_ACCESS_LOG": "false", "GATEWAY_REDIS_URL": args.redis_url}
        with servers.gateway(policy, env=env) as gw:
            for stream in (False, True):
                miss, hit, hits = asyncio.run(_run(gw, args.requests, stream))
                kind = "stream" if stream else "non-stream"
                print(f"{kind:<11} miss p50 {statistics.median(miss):7.3f} ms p99 {percentile(miss, .99):7.3f} | "
                      f"hit p50 {statistics.median(hit):6.3f} ms p99 {percentile(hit, .99):6.3f} | "
                      f"hit/miss p50 {statistics.median(hit) / statistics.median(miss):.3f} "
                      f"({hits}/{args.requests} second requests were hits; upstream TTFT {args.ttft_ms:g} ms)")


if __name__ == "__main__":
    main()
