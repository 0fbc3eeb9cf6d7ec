"""Shared pieces of the adversarial suite: policies on disk, keys, spend, metrics, the error envelope."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from gateway.policy.models import ApiKey

ADMIN_KEY = "sk-adversarial-admin-0001"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def key_hash(secret: str) -> str:
    return ApiKey.hash(secret)


def write_policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; its value, or AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g}s")
        time.sleep(interval)


def spend(url: str, kind: str = "key") -> dict[str, float]:
    """USD spent today per key (or team, deployment), read through the admin endpoint."""
    resp = httpx.get(f"{url}/v1/gateway/spend", params={"period": "day"}, headers=ADMIN, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json().get(kind, {})


def metric(url: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels`` (scraped with the admin key, which an
    installation that protects /metrics requires and an open one ignores)."""
    text = httpx.get(f"{url}/metrics", headers=ADMIN, timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def assert_envelope(resp: httpx.Response, *, status: int | None = None) -> dict[str, Any]:
    """The response is an error in OpenAI's envelope; returns its ``error`` object."""
    if status is not None:
        assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text[:500]}"
    assert resp.status_code >= 400, f"expected an error, got {resp.status_code}: {resp.text[:300]}"
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON ({resp.status_code}): {resp.text[:300]!r}") from None
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"not OpenAI's envelope: {body!r}"[:500]
    assert set(error) >= {"message", "type", "param", "code"}, f"envelope fields missing: {error!r}"
    assert isinstance(error["message"], str) and error["message"], error
    return error
