"""Answers of another model of the same family: the ``variant`` knob.

Two deployments of the simulator give the same answer to the same prompt whenever their model ids
match (and tool calls and JSON documents always match: they come from the schema). Comparing answers
needs disagreement made on purpose too. With ``variant`` N (not 0) an answer changes the way a
different model's would, deterministically:

- plain text keeps its length and its ``"Simulated answer from <model>:"`` head; the words after it are
  drawn again (seeded by the original text and N);
- every number in tool-call arguments and JSON documents is N higher (booleans and strings stay):
  a schema without numbers still agrees, one with numbers disagrees, and a ``maximum`` may be crossed.

A JSON document cut short (``max_tokens``) is left as it is.
"""

from __future__ import annotations

import random
import re
import zlib
from typing import Any

import orjson

from gateway.simulator.generation import _VOCABULARY, Answer, Choice, ToolCall

_JSON_PIECES = re.compile(r"\w+|[^\w]+")
_HEAD = 4  # "Simulated", " answer", " from", " <model>:"


def vary(answer: Answer, variant: int) -> Answer:
    """``answer`` as variant ``variant`` gives it (``variant`` 0: unchanged)."""
    if not variant:
        return answer
    return Answer([_vary_choice(c, variant) for c in answer.choices], answer.prompt_tokens)


def _vary_choice(choice: Choice, variant: int) -> Choice:
    calls = [ToolCall(c.id, c.name, _shift_document(c.arguments, variant) or c.arguments) for c in choice.tool_calls]
    text = choice.text
    document = _shift_document(text, variant) if text[:1] in ("{", "[") else None
    if document is not None:
        tokens = _JSON_PIECES.findall(document)
    else:
        tokens = _redraw(choice.tokens, variant)
    return Choice(choice.index, tokens, calls, choice.finish, choice.stop_sequence)


def _redraw(tokens: list[str], variant: int) -> list[str]:
    if len(tokens) <= _HEAD:
        return list(tokens)
    rng = random.Random(zlib.crc32("".join(tokens).encode()) * 1000 + variant)
    words = tokens[:_HEAD] + [" " + rng.choice(_VOCABULARY) for _ in tokens[_HEAD:]]
    if tokens[-1].endswith("."):
        words[-1] += "."
    return words


def _shift_document(text: str, variant: int) -> str | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(_shift(value, variant)).decode()


def _shift(value: Any, variant: int) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value + variant
    if isinstance(value, dict):
        return {k: _shift(v, variant) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, variant) for v in value]
    return value
