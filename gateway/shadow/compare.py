"""Compare a primary's answer with its shadow's: what the request asked for decides what is compared.

- **Tool calls** (the request offered tools, or either side called one): the two agree when they call
  the same functions, as many times each, with arguments equal as JSON (key order and spacing aside;
  arguments that are not JSON compare as written). Both answering without a call also agrees.
- **JSON** (``json_schema`` or ``json_object`` asked for): each side is valid when it parses and, with a
  schema, validates against it (``json_check``); the two agree when the shadow's is valid and equal as
  JSON to the primary's.
- **Text** (everything else, when either side wrote text): token-level F1 of the two texts (or the cosine
  of their embeddings, when the runner got them: ``with_embedding_similarity``) and the length ratio.
- **Refusal**, for every pair: whether each side refused (``refusal``).

Pure: the inputs are two ``Answer``s and the request's ``Expectation``; latency and cost are the runner's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Literal

from gateway.shadow.answers import Answer, ToolCall
from gateway.shadow.json_check import canonical_json, check_json, is_parsed, parse_json
from gateway.shadow.refusal import refused
from gateway.shadow.similarity import length_ratio, token_f1

Similarity = Literal["token_f1", "embedding_cosine"]


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the request asked for, read from its chat-shaped body."""

    tools: bool = False
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False

    @property
    def json(self) -> bool:
        return self.json_schema is not None or self.json_mode

    @classmethod
    def of(cls, chat_body: dict[str, Any]) -> Expectation:
        tools = bool(chat_body.get("tools") or chat_body.get("functions")) and chat_body.get("tool_choice") != "none"
        fmt = chat_body.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        schema = None
        if kind == "json_schema":
            spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
            found = spec.get("schema") if isinstance(spec, dict) else None
            schema = found if isinstance(found, dict) else {}
        return cls(tools=tools, json_schema=schema, json_mode=kind == "json_object")


@dataclass(frozen=True, slots=True)
class Scores:
    """One pair's comparison; ``None`` where the case does not apply (or could not be decided)."""

    tool_calls_agree: bool | None = None
    json_valid_primary: bool | None = None
    json_valid_shadow: bool | None = None
    json_agree: bool | None = None
    text_similarity: float | None = None
    similarity: Similarity = "token_f1"
    length_ratio: float | None = None
    refusal_primary: bool = False
    refusal_shadow: bool = False

    def with_embedding_similarity(self, cosine: float) -> Scores:
        return replace(self, text_similarity=cosine, similarity="embedding_cosine")

    def to_log(self) -> dict[str, Any]:
        """The scores for the access log: numbers and flags only, never text."""
        entry: dict[str, Any] = {"refusal_primary": self.refusal_primary, "refusal_shadow": self.refusal_shadow}
        for name in ("tool_calls_agree", "json_valid_primary", "json_valid_shadow", "json_agree"):
            value = getattr(self, name)
            if value is not None:
                entry[name] = value
        if self.text_similarity is not None:
            entry.update(text_similarity=round(self.text_similarity, 4), similarity=self.similarity)
        if self.length_ratio is not None:
            entry["length_ratio"] = round(self.length_ratio, 4)
        return entry


def compare(primary: Answer, shadow: Answer, expected: Expectation) -> Scores:
    scores = Scores(refusal_primary=refused(primary), refusal_shadow=refused(shadow))
    if expected.tools or primary.tool_calls or shadow.tool_calls:
        scores = replace(scores, tool_calls_agree=same_calls(primary.tool_calls, shadow.tool_calls))
        if primary.tool_calls or shadow.tool_calls:
            return scores  # a call is the answer: its text (if any) is beside the point
    if expected.json:
        a, b = check_json(primary.text, expected.json_schema), check_json(shadow.text, expected.json_schema)
        agree = None if b.valid is None else bool(b.valid and a.parsed and canonical_json(a.value) == canonical_json(b.value))
        return replace(scores, json_valid_primary=a.valid, json_valid_shadow=b.valid, json_agree=agree)
    if primary.text or shadow.text:
        scores = replace(scores, text_similarity=token_f1(primary.text, shadow.text),
                         length_ratio=length_ratio(primary.text, shadow.text))
    return scores


def same_calls(a: tuple[ToolCall, ...], b: tuple[ToolCall, ...]) -> bool:
    return Counter(_canonical(c) for c in a) == Counter(_canonical(c) for c in b)


def _canonical(call: ToolCall) -> tuple[str, str]:
    value = parse_json(call.arguments) if call.arguments.strip() else {}
    if not is_parsed(value):
        return call.name, call.arguments
    return call.name, canonical_json(value)
