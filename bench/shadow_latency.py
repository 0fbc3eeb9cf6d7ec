"""Client latency with shadow evaluation on and off, in one run: what shadowing every request costs the
client who never waits for a shadow.

Run: .venv/bin/python bench/shadow_latency.py [--requests N] [--clients C] [--samples 0.05,1]

Starts two upstream simulators (the vendor, and the self-hosted model that answers in the shadow) and a
gateway per setting on the same policy: one without shadows, and one per sample rate (``--samples``).
The shadow answers slower than the primary (its time to first token is set higher), so shadows are still
running when the next requests arrive: the shadowed gateway relays live traffic while its event loop also
sends shadows, reads their answers and compares them. C clients send a mix of requests — text, tool
calls, JSON schema, streams — each request to every gateway one after the other (the order rotates), so
the machine's load, the shadow simulator's included, falls on all alike. Prints p50/p90/p99 of the
client's total time (and time to first event for streams) for each, the ratios to the gateway without
shadows, the shadows compared during the run, and each gateway's CPU time per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from percentile import percentile  # bench/percentile.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import servers  # noqa: E402

ADMIN = "sk-bench-admin-0123456789"
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "place", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"]}}}
MIX: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"}]},
    {"messages": [{"role": "user", "content": "Weather in Oslo for three days?"}], "tools": [TOOL]},
    {"messages": [{"role": "user", "content": "Where is the Prado?"}], "response_format": SCHEMA},
    {"messages": [{"role": "user", "content": "Tell me a short story."}], "stream": True},
]
POLICY = """
name: shadow-bench-{name}
defaults:
  shadow: {{max_in_flight: 16, max_queued: 256}}
deployments:
  vendor: {{type: openai, model: gpt-4o, api_base: "{sim}/v1", api_key: sk-test, hosting: vendor,
            price: {{input_per_mtok: 2.5, output_per_mtok: 10}}, capabilities: [tools, json_schema]}}
  qwen-self: {{type: vllm, model: qwen2.5-7b-instruct, api_base: "{shadow_sim}/v1", hosting: self,
               headers: {{x-sim-ttft-ms: "25", x-sim-variant: "1"}},
               price: {{input_per_mtok: 0.2, output_per_mtok: 0.4}}, capabilities: [tools, json_schema]}}
models:
  support: {{deployments: [vendor]{shadow}}}
"""


async def one(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[float, float | None]:
    t0 = time.perf_counter()
    async with session.post(url, json=body) as resp:
        first = None
        async for _ in resp.content.iter_any():
            if first is None:
                first = time.perf_counter() - t0
        assert resp.status == 200, resp.status
    return time.perf_counter() - t0, first if body.get("stream") else None


async def run(session: aiohttp.ClientSession, urls: dict[str, str], n: int, clients: int,
              out: dict[str, dict[str, list[float]]]) -> None:
    """``n`` requests of the mix, each sent to every gateway in turn (the first alternates), by ``clients``."""
    queue = [{"model": "support", "max_tokens": 24, **MIX[i % len(MIX)]} for i in range(n)]
    names = list(urls)

    async def client() -> None:
        while queue:
            body = queue.pop()
            turn = len(queue) % len(names)
            for name in names[turn:] + names[:turn]:
                total, ttft = await one(session, f"{urls[name]}/v1/chat/completions", body)
                out[name]["total"].append(total * 1000)
                if ttft is not None:
                    out[name]["ttft"].append(ttft * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))


async def measure(urls: dict[str, str], n: int, clients: int) -> dict[str, dict[str, list[float]]]:
    async with aiohttp.ClientSession() as session:
        await run(session, urls, 40, clients, {name: {"total": [], "ttft": []} for name in urls})  # warm up
        out: dict[str, dict[str, list[float]]] = {name: {"total": [], "ttft": []} for name in urls}
        await run(session, urls, n, clients, out)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values):7.3f}  p90 {percentile(values, .9):7.3f}  p99 {percentile(values, .99):7.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000, help="per gateway (default 2000)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--samples", default="0.05,1", help="sample rates of the shadowed gateways (default 0.05,1)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    with contextlib.ExitStack() as running:
        sim = running.enter_context(servers.simulator(ttft_ms=5, output_tokens=24))
        shadow_sim = running.enter_context(servers.simulator(ttft_ms=5, output_tokens=24))
        tmp = running.enter_context(tempfile.TemporaryDirectory())
        env = {"GATEWAY_ACCESS_LOG": "false", "GATEWAY_ADMIN_KEY": ADMIN}
        urls, pids = {}, {}
        settings = [("off", "")] + [(f"sample {rate}", f", shadow: {{deployment: qwen-self, sample: {rate}}}")
                                    for rate in args.samples.split(",")]
        for i, (name, shadow) in enumerate(settings):
            policy = Path(tmp) / f"{i}.yaml"
            policy.write_text(POLICY.format(name=i, sim=sim, shadow_sim=shadow_sim, shadow=shadow))
            urls[name] = running.enter_context(servers.gateway(policy, env=env))
            pids[name] = servers.process_of(urls[name]).pid
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        results = asyncio.run(measure(urls, args.requests, args.clients))
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / (args.requests + 40) for name, pid in pids.items()}
        time.sleep(2)  # the last shadows finish
        pairs = {name: (json.loads(admin_get(f"{url}/v1/gateway/shadow", ADMIN))["pairs"] or [{}])[0]
                 for name, url in urls.items() if name != "off"}
    print(f"{args.requests} requests per gateway, {args.clients} clients, mix: text, tools, JSON schema, stream; "
          "each request sent to every gateway in turn")
    for kind in ("total", "ttft"):
        off = results["off"][kind]
        print(f"  {kind:<5} {'no shadows':<12} {summary(off)}")
        for name in pairs:
            on = results[name][kind]
            print(f"  {kind:<5} {name:<12} {summary(on)}   × p50 {statistics.median(on) / statistics.median(off):.3f}  "
                  f"p90 {percentile(on, .9) / percentile(off, .9):.3f}  p99 {percentile(on, .99) / percentile(off, .99):.3f}")
    for name, pair in pairs.items():
        print(f"  {name}: shadows compared {pair.get('compared')} of {pair.get('requests')} sampled "
              f"(dropped {pair.get('drops')})")
    print("  gateway CPU per request (ms): " + ", ".join(f"{name} {value:.3f}" for name, value in cpu.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "cpu_ms_per_request": cpu, "shadow": pairs}))


def admin_get(url: str, key: str) -> str:
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.read().decode()


if __name__ == "__main__":
    main()
