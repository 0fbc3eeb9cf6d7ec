"""The fuzz property, and the ledger of what the fuzz runs saw.

Property, for every request however hostile: no 5xx (except 502/503/504 for a request that named a
deployment whose upstream fails on purpose), no hang (every answer within ``ANSWER_BOUND_S``), the
gateway stays up, and every error is OpenAI's envelope ``{"error": {"message", "type", "param",
"code"}}`` — as a JSON body, or as the final event of a stream. ``LEDGER`` counts examples and 5xx per
suite; ``tests/fuzz/conftest.py`` writes it to ``tests/out/fuzz-figures.json`` for the note.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck

ANSWER_BOUND_S = 15.0
OUT = Path(__file__).resolve().parents[1] / "out" / "fuzz-figures.json"
INJECTED_FAULT_STATUSES = frozenset((502, 503, 504))

# Profiles: `fuzz-ci` (default) is derandomized, so CI runs the same examples every time and a red run
# reproduces; `fuzz-deep` explores freely with many more examples, for a developer's machine.
hypothesis.settings.register_profile(
    "fuzz-ci", derandomize=True, max_examples=150, deadline=None, print_blob=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                           HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
hypothesis.settings.register_profile("fuzz-deep", hypothesis.settings.get_profile("fuzz-ci"), derandomize=False,
                                     max_examples=2000)


def fuzz_settings(scale: float = 1.0) -> hypothesis.settings:
    """The active fuzz profile (``GATEWAY_FUZZ_PROFILE``, default ``fuzz-ci``), its example count scaled."""
    base = hypothesis.settings.get_profile(os.environ.get("GATEWAY_FUZZ_PROFILE", "fuzz-ci"))
    return hypothesis.settings(base, max_examples=max(10, int(base.max_examples * scale)))


@dataclass
class SuiteCount:
    examples: int = 0
    server_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    first_violations: list[str] = field(default_factory=list)


LEDGER: dict[str, SuiteCount] = {}


def record(suite: str, status: int, violation: str | None, operation: str = "") -> None:
    count = LEDGER.setdefault(suite, SuiteCount())
    count.examples += 1
    count.statuses[status] += 1
    if operation:
        count.operations[operation] += 1
    if violation is not None:
        count.server_errors += status >= 500
        if len(count.first_violations) < 5:
            count.first_violations.append(violation)


def write_ledger() -> None:
    if not LEDGER:
        return
    OUT.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(OUT.read_text()) if OUT.exists() else {}
    for suite, count in LEDGER.items():
        existing[suite] = {"examples": count.examples, "violations_5xx": count.server_errors,
                           "statuses": {str(k): v for k, v in sorted(count.statuses.items())},
                           "operations": dict(sorted(count.operations.items())),
                           "first_violations": count.first_violations}
    OUT.write_text(json.dumps(existing, indent=2) + "\n")


def _is_envelope(payload: Any) -> bool:
    error = payload.get("error") if isinstance(payload, dict) else None
    return (isinstance(error, dict) and {"message", "type", "param", "code"} <= set(error)
            and isinstance(error["message"], str))


def violation(status: int, headers: dict[str, str], body: bytes, *, fault_injected: bool,
              anthropic: bool = False) -> str | None:
    """What is wrong with this answer, or ``None`` when it keeps the property. ``anthropic``: the route speaks
    Anthropic's Messages API, whose errors come in Anthropic's envelope (529 is its "overloaded")."""
    if status >= 500 and not (fault_injected and status in INJECTED_FAULT_STATUSES) and not (anthropic and status == 529):
        return f"{status}: {body[:300]!r}"
    if status >= 400:
        try:
            payload = json.loads(body)
        except ValueError:
            return f"{status} without a JSON body: {body[:200]!r}"
        if anthropic:
            return None if _is_anthropic_envelope(payload) else f"{status} not in Anthropic's envelope: {body[:300]!r}"
        if not _is_envelope(payload):
            return f"{status} not in OpenAI's envelope: {body[:300]!r}"
        return None
    if "text/event-stream" in headers.get("content-type", ""):
        return _stream_violation(body, fault_injected)
    return None


def _is_anthropic_envelope(payload: object) -> bool:
    error = payload.get("error") if isinstance(payload, dict) else None
    return (isinstance(payload, dict) and payload.get("type") == "error" and isinstance(error, dict)
            and isinstance(error.get("type"), str) and isinstance(error.get("message"), str))


def _stream_violation(body: bytes, fault_injected: bool) -> str | None:
    events = [e for e in body.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
    if not events:
        return "an empty stream"
    for event in events:
        data = b"\n".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
        if not data or data == b"[DONE]":
            continue
        try:
            payload = json.loads(data)
        except ValueError:
            return f"a stream event that is not JSON: {data[:200]!r}"
        if isinstance(payload, dict) and "error" in payload:
            if not _is_envelope(payload):
                return f"a stream error event not in OpenAI's envelope: {data[:300]!r}"
            if not fault_injected:
                return f"a stream ended in an error with no upstream fault injected: {data[:300]!r}"
    return None
