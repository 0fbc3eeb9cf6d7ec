"""CPU per request of each entrance against the chat passthrough, in one run.

Run: ``.venv/bin/python bench/entrances.py [--requests 400] [--rounds 3]``. A gateway process sits in front
of the HTTP simulator (another process) with tests/policies/entrances.yaml; for each case the gateway's
own CPU time (from /proc) is divided by the requests it served. Cases are interleaved round by round, so
a busy machine slows them alike; the ratio to the chat passthrough is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import servers  # noqa: E402

POLICY = Path(__file__).resolve().parent.parent / "tests" / "policies" / "entrances.yaml"
USER = [{"role": "user", "content": "Say hello in a short sentence."}]
CASES: dict[str, tuple[str, dict]] = {
    "chat → self-hosted (passthrough)": ("/v1/chat/completions", {"model": "qwen", "messages": USER}),
    "messages → self-hosted (translated)": ("/v1/messages", {"model": "qwen", "max_tokens": 64, "messages": USER}),
    "responses → self-hosted (translated)": ("/v1/responses", {"model": "qwen", "input": "Say hello.", "store": False}),
    "messages → Anthropic (native)": ("/v1/messages", {"model": "claude", "max_tokens": 64, "messages": USER}),
    "responses → OpenAI (native)": ("/v1/responses", {"model": "gpt-4o", "input": "Say hello.", "store": False}),
}


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(base: str, path: str, body: dict, requests: int, concurrency: int = 8) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30, headers={"x-api-key": "k"}) as client:
        queue = list(range(requests))

        async def worker() -> None:
            while queue:
                queue.pop()
                resp = await client.post(path, json=body)
                assert resp.status_code == 200, resp.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stream", action="store_true", help="streamed requests")
    args = parser.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in CASES}
    with servers.simulator(ttft_ms=0, output_tokens=16) as sim, \
            servers.gateway(POLICY, env={"SIM_URL": sim, "GATEWAY_ACCESS_LOG": "false"}) as url:
        pid = servers.process_of(url).pid
        for path, body in CASES.values():  # warm up every path once
            asyncio.run(_drive(url, path, {**body, "stream": args.stream}, 20))
        for _ in range(args.rounds):
            for case, (path, body) in CASES.items():
                before = _cpu_seconds(pid)
                asyncio.run(_drive(url, path, {**body, "stream": args.stream}, args.requests))
                samples[case].append((_cpu_seconds(pid) - before) / args.requests * 1e6)
    base = statistics.median(samples[next(iter(CASES))])
    print(f"gateway CPU per request ({'streamed' if args.stream else 'not streamed'}, median of {args.rounds} rounds):")
    for case, values in samples.items():
        cpu = statistics.median(values)
        print(f"  {case:40s} {cpu:8.0f} µs   ×{cpu / base:.2f}")


if __name__ == "__main__":
    main()
