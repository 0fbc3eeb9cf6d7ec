"""Decision time of the routing engine, per request (median and p99), with the facts it needs.

Run: .venv/bin/python bench/engine_decide.py [--iterations N]

Measures, in one process, for each shipped policy and a mix of request bodies:
  facts   building RequestFacts (token estimate + sensitive-data scan + features)
  decide  the pure engine
and, as a baseline on the same machine in the same run, ``orjson.loads`` of the same body
(what any proxy pays to look at a request at all). Figures are this machine's; the ratio is the point.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import orjson
from percentile import percentile  # bench/percentile.py, beside this script

from gateway.core.types import Endpoint
from gateway.policy.loader import load_policy
from gateway.routing.engine import decide
from gateway.routing.facts import FactsBuilder

ROOT = Path(__file__).resolve().parent.parent
BODIES = [
    {"model": "auto", "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                   {"role": "user", "content": "Summarise the quarterly report in five bullet points. " * 20}]},
    {"model": "auto", "messages": [{"role": "user", "content": "Reply to jane.doe@example.com about invoice 4411."}],
     "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]},
    {"model": "auto", "messages": [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                                                {"type": "image_url", "image_url": {"url": "data:,"}}]}]},
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'policy':<24}{'baseline µs':>12}{'facts µs p50/p99':>20}{'decide µs p50/p99':>20}{'decide/baseline':>17}")
    for name in ("default.yaml", "cost-tiers.yaml", "sensitive-data.yaml", "latency-slo.yaml", "origin-restricted.yaml"):
        policy = load_policy(ROOT / "policies" / name).policy
        builder = FactsBuilder(policy)
        model = next(iter(policy.models))
        bodies = [{**b, "model": model} for b in BODIES]
        raws = [orjson.dumps(b) for b in bodies]
        headers = {"x-data-class": "internal"}
        base: list[float] = []
        facts_t: list[float] = []
        decide_t: list[float] = []
        clock = time.perf_counter_ns
        for i in range(args.iterations):
            raw, body = raws[i % 3], bodies[i % 3]
            t0 = clock()
            orjson.loads(raw)
            t1 = clock()
            facts = builder.build(Endpoint.CHAT, body, headers, team="default", key="k")
            t2 = clock()
            decide(facts, policy, {}, decision_id="bench")
            t3 = clock()
            base.append((t1 - t0) / 1000)
            facts_t.append((t2 - t1) / 1000)
            decide_t.append((t3 - t2) / 1000)
        b50 = statistics.median(base)
        d50 = statistics.median(decide_t)
        print(f"{name:<24}{b50:>12.2f}{statistics.median(facts_t):>11.1f} /{percentile(facts_t, 0.99):>6.1f}"
              f"{d50:>12.1f} /{percentile(decide_t, 0.99):>6.1f}{d50 / b50:>16.1f}x")


if __name__ == "__main__":
    main()
