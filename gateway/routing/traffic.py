"""Recorded traffic for ``gateway policy simulate``: the gateway's JSON access log, or a JSONL of requests.

Two kinds of line are understood, and may be mixed:

- an **access-log line** (has ``request_id`` and ``outcome``): the request facts the gateway decided on
  (model, team, key name, data class, detected kinds, estimated prompt tokens, requested output,
  features, endpoint, the headers and metadata rules named) plus what happened (deployment, cost,
  tokens, time to first token). Never prompt text: the log has none. Lines of requests rejected
  before routing (bad key, invalid body) carry no facts and are skipped;
- a **request line**: an OpenAI request body (``{"model": ..., "messages": [...]}``) or a wrapper
  ``{"request": {...}, "team": ..., "key": ..., "headers": {...}, "endpoint": "chat"}`` (the shape of a
  golden case). Its facts are built by each policy's own facts builder, as the gateway would.

Shadow evaluation's own lines (``"event": "shadow"``) are results, not requests: they are left out
silently. Lines that are neither (other log output, blank lines) are counted and reported, never fatal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from gateway.core.errors import GatewayError
from gateway.core.types import Endpoint, RequestFacts
from gateway.policy.conditions import DATA_CLASSES
from gateway.policy.models import Policy
from gateway.routing.conditions import data_class_rank
from gateway.routing.facts import FactsBuilder

Validator = Callable[[Endpoint, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the gateway did with a logged request."""

    outcome: str
    deployment: str | None = None
    cost_usd: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    """Streams only: request received → first event sent."""
    upstream_ms: float | None = None
    """Non-streamed: the whole upstream call; streamed: until the stream opened."""
    duration_ms: float | None = None
    error_type: str | None = None
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TrafficRecord:
    line: int
    facts: RequestFacts | None = None
    """From an access-log line (the recorded data class, as the gateway raised it)."""
    body: dict[str, Any] | None = None
    """From a request line; its facts depend on the policy (``facts_under``)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    team: str | None = None
    key: str | None = None
    endpoint: Endpoint = Endpoint.CHAT
    ts: float = 0.0
    """When the request arrived (UTC epoch seconds), for time-of-day rules."""
    recorded: Recorded | None = None


@dataclass(frozen=True, slots=True)
class Traffic:
    records: tuple[TrafficRecord, ...]
    skipped: tuple[tuple[int, str], ...]
    """(line number, why) for every line that could not be replayed."""

    @property
    def kind(self) -> str:
        logs = sum(r.recorded is not None for r in self.records)
        if logs == len(self.records):
            return "gateway access log"
        return "request bodies" if not logs else "access log and request bodies"


def read_traffic(lines: Iterable[str | bytes], validate: Validator | None = None) -> Traffic:
    records: list[TrafficRecord] = []
    skipped: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError:
            skipped.append((number, "not a JSON line"))
            continue
        try:
            record = _record(number, item, validate)
        except _Skip as reason:
            skipped.append((number, str(reason)))
            continue
        if record is not None:
            records.append(record)
    return Traffic(tuple(records), tuple(skipped))


class _Skip(Exception):
    pass


def _record(number: int, item: Any, validate: Validator | None) -> TrafficRecord | None:
    if not isinstance(item, dict):
        raise _Skip("not a JSON object")
    if item.get("event") == "shadow":
        return None  # a shadow's result, not a request: its evidence is read from GET /v1/gateway/shadow
    if "request_id" in item and "outcome" in item:
        return _from_log(number, item)
    if isinstance(item.get("request"), dict):
        return _from_request(number, item["request"], item, validate)
    if "model" in item:
        return _from_request(number, item, {}, validate)
    raise _Skip("neither an access-log line nor a request body")


def _from_log(number: int, entry: dict[str, Any]) -> TrafficRecord:
    if entry.get("data_class") is None or not entry.get("model"):
        status = entry.get("status")
        raise _Skip(f"no request facts: refused before routing (status {status})")
    try:
        endpoint = Endpoint(entry.get("endpoint", "chat"))
    except ValueError:
        raise _Skip(f"unknown endpoint {entry.get('endpoint')!r}") from None
    when = time.gmtime(float(entry.get("ts") or 0))  # time-of-day rules see the recorded hour
    facts = RequestFacts(
        endpoint=endpoint, model=str(entry["model"]), team=str(entry.get("team") or "default"),
        key=str(entry.get("key") or "anonymous"), data_class=str(entry["data_class"]),
        detected=tuple(entry.get("detected") or ()), prompt_tokens=int(entry.get("prompt_tokens_est") or 0),
        max_output_tokens=_int_or_none(entry.get("max_output_tokens")),
        features=frozenset(entry.get("features") or ()), stream=bool(entry.get("stream")),
        headers=dict(entry.get("headers") or {}), metadata=dict(entry.get("metadata") or {}),
        hour_utc=when.tm_hour, weekday=when.tm_wday, budget_pacing=bool(entry.get("budget_pacing")),
    )
    recorded = Recorded(
        outcome=str(entry["outcome"]), deployment=entry.get("deployment"), cost_usd=float(entry.get("cost_usd") or 0),
        prompt_tokens=_int_or_none(entry.get("prompt_tokens")),
        completion_tokens=_int_or_none(entry.get("completion_tokens")),
        ttft_ms=_float_or_none(entry.get("ttft_ms")), upstream_ms=_float_or_none(entry.get("upstream_ms")),
        duration_ms=_float_or_none(entry.get("duration_ms")), error_type=_str_or_none(entry.get("error_type")),
        targets=tuple(str(t) for t in entry.get("targets") or ()),
    )
    return TrafficRecord(number, facts=facts, endpoint=endpoint, team=facts.team, key=facts.key,
                         ts=float(entry.get("ts") or 0), recorded=recorded)


def _from_request(number: int, body: dict[str, Any], wrapper: dict[str, Any], validate: Validator | None) -> TrafficRecord:
    try:
        endpoint = Endpoint(wrapper.get("endpoint", "chat"))
    except ValueError:
        raise _Skip(f"unknown endpoint {wrapper.get('endpoint')!r}") from None
    if validate is not None:
        try:
            validate(endpoint, body)
        except GatewayError as exc:
            raise _Skip(f"the gateway would refuse this body (400): {exc.message}") from None
    headers = wrapper.get("headers") or {}
    if not isinstance(headers, dict):
        raise _Skip("`headers` must be an object")
    ts = wrapper.get("ts")
    return TrafficRecord(number, body=body, endpoint=endpoint, headers={str(k).lower(): str(v) for k, v in headers.items()},
                         team=_str_or_none(wrapper.get("team")), key=_str_or_none(wrapper.get("key")),
                         ts=float(ts) if isinstance(ts, int | float) else 0.0)


def facts_under(policy: Policy, builder: FactsBuilder, record: TrafficRecord) -> RequestFacts:
    """The request facts ``policy`` would see for ``record``.

    A request line goes through the policy's own facts builder. A logged line keeps its recorded facts,
    with the data class raised (never lowered) to what this policy would make of it: its team's default,
    and its sensitive-data class when kinds were detected.
    """
    if record.body is not None:
        team = record.team
        if team is None and record.key is not None:
            team = next((k.team for k in policy.keys if k.name == record.key), None)
        return builder.build(record.endpoint, record.body, record.headers, team=team or "default",
                             key=record.key or "anonymous", now=record.ts)
    assert record.facts is not None
    facts = record.facts
    data_class = facts.data_class if facts.data_class in DATA_CLASSES else "internal"
    settings = policy.teams.get(facts.team)
    if settings is not None and data_class_rank(settings.data_class) > data_class_rank(data_class):
        data_class = settings.data_class
    raise_to = policy.defaults.sensitive_data_class
    if facts.detected and policy.defaults.detect_sensitive_data and data_class_rank(raise_to) > data_class_rank(data_class):
        data_class = raise_to
    return facts if data_class == facts.data_class else replace(facts, data_class=data_class)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None
