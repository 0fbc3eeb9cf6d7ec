"""Record a sample of traffic through a real gateway: the access log `gateway policy simulate` replays.

Starts ``gateway serve`` on ``bench/traffic/current.yaml`` (upstreams simulated in-process, at the
speeds the policy gives them), sends a seeded mix of requests with the official ``openai`` SDK from
three teams, and keeps the gateway's JSON access-log lines::

    .venv/bin/python bench/traffic/record.py                 # → bench/traffic/support-access-log.jsonl
    .venv/bin/python bench/traffic/record.py --requests 60 --out /tmp/log.jsonl

The mix: support (55%) asks ``support-assistant`` — mostly streamed questions, some with tools, some
with an e-mail address (kept self-hosted by the policy), some with a screenshot, a few very long
tickets; engineering (30%) asks ``auto`` for code help, sometimes with an image; payments (15%) sends
confidential summaries. The log holds request facts and outcomes, never prompt text.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from openai import OpenAI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402 - the repository's own way of running a gateway on loopback

KEYS = {"support-bot": "sk-demo-support-bot", "support-console": "sk-demo-support-console",
        "eng-ci": "sk-demo-eng-ci", "payments-api": "sk-demo-payments-api"}
QUESTIONS = [
    "My order {n} has not arrived yet, where is it?", "How do I reset the password of my account?",
    "I was charged twice for invoice {n}, can you refund one of them?", "Can I change the delivery address of order {n}?",
    "The app crashes when I open the settings page on Android.", "Do you ship to Norway, and how long does it take?",
    "Why was my discount code rejected at checkout?", "I want to cancel my subscription before the next billing date.",
]
CODE = ["Explain this stack trace: KeyError in handler line {n}.", "Refactor this function to avoid the nested loops.",
        "Write a unit test for the date parser.", "Why does this SQL query scan the whole table?"]
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order by number",
                                           "parameters": {"type": "object", "properties": {"order": {"type": "string"}},
                                                          "required": ["order"]}}}]
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/screenshot.png"}}
LONG_TICKET = "The customer forwarded the whole conversation history with our partner, quoted below. " * 3000


def plan(count: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """(key name, request arguments) for each request; the same seed gives the same traffic."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.55:
            requests.append(_support(rng, i))
        elif roll < 0.85:
            requests.append(_engineering(rng, i))
        else:
            text = f"Summarise settlement batch {i}: 412 transfers, 3 disputed, net EUR {rng.randint(10, 99)}k."
            requests.append(("payments-api", {"model": "auto", "max_tokens": rng.randint(80, 200),
                                              "messages": [{"role": "user", "content": text}]}))
    return requests


def _support(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    text = rng.choice(QUESTIONS).format(n=rng.randint(10000, 99999))
    kind = rng.random()
    content: Any = text
    body: dict[str, Any] = {"model": "support-assistant", "stream": rng.random() < 0.7,
                            "max_tokens": rng.randint(60, 420)}
    if kind < 0.08:
        content = [{"type": "text", "text": "What does the error on this screenshot mean?"}, IMAGE]
    elif kind < 0.16:
        content = f"{text} Please reply to jane.doe{i}@example.com."
    elif kind < 0.18:
        content = LONG_TICKET + text
    elif kind < 0.33:
        body["tools"] = TOOLS
    body["messages"] = [{"role": "system", "content": "You are a friendly support agent."},
                        {"role": "user", "content": content}]
    return rng.choice(["support-bot", "support-console"]), body


def _engineering(rng: random.Random, i: int) -> tuple[str, dict[str, Any]]:
    text = rng.choice(CODE).format(n=rng.randint(1, 400))
    content: Any = [{"type": "text", "text": text}, IMAGE] if rng.random() < 0.06 else text
    return "eng-ci", {"model": "auto", "stream": rng.random() < 0.5, "max_tokens": rng.randint(100, 500),
                      "messages": [{"role": "user", "content": content}]}


def send(url: str, key: str, body: dict[str, Any]) -> str:
    client = OpenAI(base_url=f"{url}/v1", api_key=KEYS[key], max_retries=0, timeout=60)
    try:
        if body.get("stream"):
            for _ in client.chat.completions.create(**body):
                pass
        else:
            client.chat.completions.create(**body)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - a refused request is part of the recorded traffic
        return type(exc).__name__


def record(policy: Path, count: int, seed: int, concurrency: int) -> list[str]:
    """Run the gateway, send the planned requests, return its access-log lines."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "gateway.log"
        with servers.gateway(policy, env={"GATEWAY_ACCESS_LOG": "true"}, log_path=log) as url:
            with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
                outcomes = list(pool.map(lambda item: send(url, *item), plan(count, seed)))
        print(f"sent {count} requests: " + ", ".join(f"{o} {outcomes.count(o)}" for o in sorted(set(outcomes))),
              file=sys.stderr)
        return [line for line in log.read_text().splitlines() if line.startswith('{"ts":')]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", type=Path, default=HERE / "current.yaml")
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--out", type=Path, default=HERE / "support-access-log.jsonl")
    args = parser.parse_args()
    lines = record(args.policy, args.requests, args.seed, args.concurrency)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} access-log lines to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
