"""What the real-model tests read back: the gateway's access log and metrics, the server's counters."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

SELF_PRICE = (0.1, 0.2)  # USD per million prompt / completion tokens of the self-hosted deployments


def access_entry(log: Path, request_id: str, timeout: float = 15) -> dict[str, Any]:
    """The gateway's access-log line for one request (written behind, so wait for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if request_id in line and line.startswith("{"):
                entry = json.loads(line)
                if entry.get("request_id") == request_id:
                    return entry
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for request {request_id} in {log}")


def gateway_metric(gateway: str, name: str, **labels: str) -> float | None:
    """One sample of the gateway's /metrics, matched on the labels given (others may differ)."""
    for line in httpx.get(f"{gateway}/metrics", timeout=10).text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None


def self_cost(prompt_tokens: int, completion_tokens: int) -> float:
    return round((prompt_tokens * SELF_PRICE[0] + completion_tokens * SELF_PRICE[1]) / 1_000_000, 8)


def ewma(values: list[float], alpha: float = 0.2) -> float:
    """The gateway's running estimate (routing/stats.py) over the same values."""
    out = values[0]
    for v in values[1:]:
        out += alpha * (v - out)
    return out
