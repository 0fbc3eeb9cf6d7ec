"""Lexical and vector similarity of two texts, and their length ratio. Pure and cheap.

Token-level F1 (as in SQuAD's evaluation): the texts are cut into tokens — runs of letters and digits,
and each Han, Hiragana or Katakana character on its own (those scripts write words without spaces) —
compared without regard to case; precision and recall count the tokens the two share (as multisets).
Two empty texts are identical (1.0); one empty text shares nothing (0.0).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import regex

_TOKEN = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]|[\p{L}\p{M}\p{N}]+")
MAX_TOKENS = 8192
"""Longer answers are compared on their first tokens: the score stays cheap whatever the length."""


def tokens(text: str) -> list[str]:
    return [t.casefold() for t in _TOKEN.findall(text)[:MAX_TOKENS]]


def token_f1(a: str, b: str) -> float:
    ta, tb = tokens(a), tokens(b)
    if not ta and not tb:
        return 1.0
    if not ta or not tb:
        return 0.0
    shared = sum((Counter(ta) & Counter(tb)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(tb), shared / len(ta)
    return 2 * precision * recall / (precision + recall)


def length_ratio(primary: str, shadow: str) -> float | None:
    """Tokens of the shadow's text per token of the primary's; ``None`` when the primary's has none."""
    n = len(tokens(primary))
    return len(tokens(shadow)) / n if n else None


def cosine(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Cosine of two vectors; ``None`` when their lengths differ or one is all zeros."""
    if len(a) != len(b) or not a:
        return None
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else None
