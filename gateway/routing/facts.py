"""Build ``RequestFacts`` from a validated request body, its headers and the caller's identity.

Cheap by design: one pass over the body for features, a heuristic token estimate (no tokenizer
load), and the sensitive-data scan, which can only raise the data class, never lower it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gateway.core.errors import InvalidRequest
from gateway.core.types import Endpoint, Feature, RequestFacts
from gateway.policy.conditions import DATA_CLASSES
from gateway.policy.models import Policy
from gateway.routing.conditions import data_class_rank
from gateway.routing.sensitive import SensitiveDataDetector
from gateway.routing.tokens import estimate_request_tokens

_IMAGE_PARTS = frozenset(("image_url", "input_image", "image"))
_FORWARDED_HEADER_PREFIX = "x-"


def needed_features(body: Mapping[str, Any], endpoint: Endpoint) -> frozenset[str]:
    features: set[str] = set()
    if body.get("stream") is True:
        features.add(Feature.STREAM)
    if endpoint is not Endpoint.CHAT:
        return frozenset(features)
    if body.get("tools") and body.get("tool_choice") != "none":
        features.add(Feature.TOOLS)
    if body.get("functions"):
        features.add(Feature.TOOLS)
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_schema":
            features.add(Feature.JSON_SCHEMA)
        elif fmt.get("type") == "json_object":
            features.add(Feature.JSON_MODE)
    if body.get("logprobs") is True:
        features.add(Feature.LOGPROBS)
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(isinstance(p, dict) and _is_image(p.get("type")) for p in content):
            features.add(Feature.VISION)
            break
    return frozenset(features)


def _is_image(part_type: Any) -> bool:
    return isinstance(part_type, str) and part_type in _IMAGE_PARTS


def declared_data_class(value: str, header: str) -> str:
    """The most sensitive class a (possibly repeated, comma-joined) data-class header declares."""
    declared = "public"
    for item in value.split(","):
        name = item.strip().lower()
        if name not in DATA_CLASSES:
            raise InvalidRequest(f"Header {header} must be one of {', '.join(DATA_CLASSES)}; got {name!r}.", param=header)
        if data_class_rank(name) > data_class_rank(declared):
            declared = name
    return declared


class FactsBuilder:
    """Holds the compiled detector; built once per policy load."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        defaults = policy.defaults
        self._detector = SensitiveDataDetector() if defaults.detect_sensitive_data else None
        self._header = defaults.data_class_header.lower()
        self._raise_to = defaults.sensitive_data_class
        self._wanted_headers = _named_by_rules(policy, "headers") | {self._header}
        self.metadata_keys = tuple(sorted(_named_by_rules(policy, "metadata")))
        """Metadata keys the rules look at: the only ones the access log records."""

    def build(
        self,
        endpoint: Endpoint,
        body: dict[str, Any],
        headers: Mapping[str, str],
        *,
        team: str,
        key: str,
        now: float | None = None,
        chat_body: dict[str, Any] | None = None,
    ) -> RequestFacts:
        """Facts of a request. ``body`` is what the client sent (scanned whole, its metadata read);
        ``chat_body`` is its translation to chat completions when the client spoke another protocol
        (Anthropic Messages, OpenAI Responses): the token estimate, features and output size are read
        from it, so every entrance is measured the same way."""
        shape, shape_endpoint = (body, endpoint) if chat_body is None else (chat_body, Endpoint.CHAT)
        policy = self._policy
        team_cfg = policy.teams.get(team)
        data_class: str = team_cfg.data_class if team_cfg else "internal"
        raw_class = headers.get(self._header)
        if raw_class:
            declared = declared_data_class(raw_class, self._header)
            if data_class_rank(declared) > data_class_rank(data_class):
                data_class = declared  # a header may raise the class, never lower the team's default
        detected: tuple[str, ...] = ()
        if self._detector is not None:
            detected = self._detector.scan_body(body)
            if detected and data_class_rank(self._raise_to) > data_class_rank(data_class):
                data_class = self._raise_to
        max_out = shape.get("max_completion_tokens") or shape.get("max_tokens")
        n = shape.get("n") or 1
        t = time.gmtime(time.time() if now is None else now)
        metadata = body.get("metadata")
        return RequestFacts(
            endpoint=endpoint,
            model=str(body.get("model", "")),
            team=team,
            key=key,
            data_class=data_class,
            detected=detected,
            prompt_tokens=estimate_request_tokens(shape, shape_endpoint),
            max_output_tokens=int(max_out) * int(n) if isinstance(max_out, int) else None,
            features=needed_features(shape, shape_endpoint),
            stream=body.get("stream") is True,
            headers={h: headers[h] for h in self._wanted_headers if h in headers},
            metadata=metadata if isinstance(metadata, dict) else {},
            hour_utc=t.tm_hour,
            weekday=t.tm_wday,
        )


def _named_by_rules(policy: Policy, field: str) -> set[str]:
    """The header or metadata names (``field``) the policy's rules look at, nested conditions included."""
    names: set[str] = set()

    def walk(cond: Any) -> None:
        if cond is None:
            return
        names.update(getattr(cond, field) or {})
        for nested in (cond.all or ()) + (cond.any or ()):
            walk(nested)
        walk(cond.not_)

    for rule in policy.rules:
        walk(rule.when)
    return names
