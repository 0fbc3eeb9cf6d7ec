"""Added latency of one request through the gateway, against calling the same upstream directly.

Run: .venv/bin/python bench/added_latency.py [--requests N]

Starts the upstream simulator (time to first token 0) and a gateway in front of it (one worker,
OpenAI-compatible passthrough), then sends the same chat completion N times, one at a time, first
straight to the simulator and then through the gateway, alternating in blocks so machine noise hits
both alike. Prints p50/p90/p99 of each and the difference: what the gateway adds. Streams are
measured to the first event (TTFT) and to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from percentile import percentile  # bench/percentile.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import servers  # noqa: E402

BODY = {"model": "qwen", "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 16}


async def _time(session: aiohttp.ClientSession, url: str, stream: bool) -> tuple[float, float]:
    body = {**BODY, "stream": stream}
    t0 = time.perf_counter()
    async with session.post(url, json=body) as resp:
        if not stream:
            await resp.read()
            t = time.perf_counter() - t0
            return t, t
        first = None
        async for _ in resp.content.iter_any():
            if first is None:
                first = time.perf_counter() - t0
        return first or 0.0, time.perf_counter() - t0


async def measure(direct: str, gateway: str, n: int, stream: bool) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"direct": [], "gateway": [], "direct_ttft": [], "gateway_ttft": []}
    async with aiohttp.ClientSession() as session:
        for _ in range(20):  # warm up pools on both paths
            await _time(session, direct, stream)
            await _time(session, gateway, stream)
        for _ in range(n // 50):
            for name, url in (("direct", direct), ("gateway", gateway)):
                for _ in range(50):
                    ttft, total = await _time(session, url, stream)
                    out[name].append(total * 1000)
                    out[f"{name}_ttft"].append(ttft * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with servers.simulator(ttft_ms=0, output_tokens=16) as sim, tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "p.yaml"
        policy.write_text(f"""
name: added-latency
deployments:
  sim: {{type: vllm, model: qwen, api_base: "{sim}/v1", hosting: self}}
models:
  qwen: {{deployments: [sim]}}
""")
        with servers.gateway(policy, env={"GATEWAY_ACCESS_LOG": "false"}) as gw:
            for stream in (False, True):
                r = asyncio.run(measure(f"{sim}/v1/chat/completions", f"{gw}/v1/chat/completions", args.requests, stream))
                kind = "stream" if stream else "non-stream"
                keys = ("direct_ttft", "gateway_ttft") if stream else ("direct", "gateway")
                d, g = r[keys[0]], r[keys[1]]
                label = "TTFT" if stream else "total"
                print(f"{kind:<11} {label:<6} direct p50 {statistics.median(d):6.3f} ms p99 {percentile(d, .99):6.3f} | "
                      f"gateway p50 {statistics.median(g):6.3f} ms p99 {percentile(g, .99):6.3f} | "
                      f"added p50 {statistics.median(g) - statistics.median(d):6.3f} ms "
                      f"p99 {percentile(g, .99) - percentile(d, .99):6.3f} ms  ({len(d)} requests each)")


if __name__ == "__main__":
    main()
