"""The protocol-neutral "model": a parsed prompt in, deterministic choices out.

Each wire dialect (OpenAI chat/completions, Anthropic Messages, Gemini) parses its request into a
``Prompt`` and renders the ``Answer`` back in its own format, so all of them answer alike.

A token here is one whitespace word (with its leading space), or one word/punctuation run of a JSON
document; prompt tokens are estimated as ``len(text) / 4``.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.simulator.schema import example_value

_VOCABULARY = (
    "the request was routed to a simulated upstream that answers every prompt with plain "
    "deterministic words so tests benchmarks and demos can run without GPUs keys or network "
    "access while latency faults and token counts stay under control of the caller who sets "
    "headers model names or server defaults to shape each reply"
).split()

_JSON_PIECES = re.compile(r"\w+|[^\w]+")


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Prompt:
    """What the model is asked, in dialect-neutral terms."""

    model: str
    text: str
    """All prompt text joined (drives the prompt-token estimate and seeds the answer)."""
    n: int = 1
    call_tools: tuple[Tool, ...] = ()
    """Tools to answer with calls to (the dialect already applied tool_choice); empty: answer in text."""
    json_schema: dict[str, Any] | None = None
    json_mode: bool = False
    stop: tuple[str, ...] = ()
    max_tokens: int | None = None
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """The arguments as a JSON document (as OpenAI sends them)."""

    @property
    def fragments(self) -> list[str]:
        """The argument JSON split into tokens, as a stream would deliver it."""
        return _JSON_PIECES.findall(self.arguments)


@dataclass(slots=True)
class Choice:
    index: int
    tokens: list[str]
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: str = "stop"
    """Neutral finish reason: ``stop``, ``length`` or ``tool_calls``."""
    stop_sequence: str | None = None
    """The stop string that ended the answer, when one did."""

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) + sum(len(call.fragments) + 1 for call in self.tool_calls)


@dataclass(slots=True)
class Answer:
    choices: list[Choice]
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def token_logprob(token: str) -> float:
    """A stable, plausible log-probability for a token (between about -0.01 and -2)."""
    return -round(0.01 + (zlib.crc32(token.encode()) % 2000) / 1000.0, 4)


def generate(prompt: Prompt, output_tokens: int, config_seed: int = 0) -> Answer:
    """The answer to ``prompt``; identical inputs (including ``seed``) give identical answers."""
    digest = _digest(prompt.model, prompt.text, prompt.seed, config_seed)
    choices = [_choice(prompt, index, output_tokens, digest + index) for index in range(max(1, prompt.n))]
    return Answer(choices, estimate_tokens(prompt.text))


def _choice(prompt: Prompt, index: int, output_tokens: int, seed: int) -> Choice:
    if prompt.call_tools:
        calls = [
            ToolCall(_call_id(seed, i), tool.name, orjson.dumps(example_value(tool.parameters)).decode())
            for i, tool in enumerate(prompt.call_tools)
        ]
        return Choice(index, [], calls, "tool_calls")
    if prompt.json_schema is not None or prompt.json_mode:
        tokens = _JSON_PIECES.findall(_json_document(prompt, seed))
    else:
        tokens = _words(prompt.model, output_tokens, seed)
    return _cut(Choice(index, tokens), prompt.max_tokens, prompt.stop)


def _words(model: str, count: int, seed: int) -> list[str]:
    head = ["Simulated", " answer", " from", f" {model}:"]
    rng = random.Random(seed)
    words = head[:count] + [" " + rng.choice(_VOCABULARY) for _ in range(count - len(head))]
    if count > len(head):
        words[-1] += "."
    return words


def _json_document(prompt: Prompt, seed: int) -> str:
    if prompt.json_schema is not None:
        return orjson.dumps(example_value(prompt.json_schema)).decode()
    words = _words(prompt.model, 8, seed)
    return orjson.dumps({"answer": "".join(words)}).decode()


def _cut(choice: Choice, max_tokens: int | None, stop: tuple[str, ...]) -> Choice:
    """Apply ``max_tokens`` (finish ``length``) and then ``stop`` strings (finish ``stop``)."""
    if max_tokens is not None and len(choice.tokens) > max_tokens:
        choice.tokens = choice.tokens[:max_tokens]
        choice.finish = "length"
    if not stop:
        return choice
    text = choice.text
    hits = [(text.find(s), s) for s in stop if s and s in text]
    if not hits:
        return choice
    position, matched = min(hits)
    kept: list[str] = []
    length = 0
    for token in choice.tokens:
        if length + len(token) >= position:
            if position > length:
                kept.append(token[: position - length])
            break
        kept.append(token)
        length += len(token)
    choice.tokens, choice.finish, choice.stop_sequence = kept, "stop", matched
    return choice


def _digest(model: str, text: str, seed: int | None, config_seed: int) -> int:
    key = f"{model}\x00{seed}\x00{config_seed}\x00{text}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def _call_id(seed: int, index: int) -> str:
    return hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=12).hexdigest()
