"""``POST /v1/embeddings``: deterministic unit vectors derived from a hash of each input.

The same input always gets the same vector (different inputs get unrelated ones), so tests can check
caching and passthrough. ``encoding_format: base64`` returns little-endian float32 bytes, base64
encoded, exactly as OpenAI does.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from array import array
from typing import Any

import orjson

from gateway.simulator.generation import estimate_tokens
from gateway.simulator.wire import BadRequest

MAX_DIMENSIONS = 8192


def embed(text: str | list[int], dimensions: int) -> list[float]:
    """A unit vector of ``dimensions`` floats, a pure function of ``text`` (or a token array)."""
    key = text.encode() if isinstance(text, str) else array("q", text).tobytes()
    raw = array("h", hashlib.shake_256(key).digest(2 * dimensions))
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


def embeddings_body(body: dict[str, Any], model: str, default_dim: int) -> bytes:
    """The ``list`` of ``embedding`` objects OpenAI returns for this request body."""
    inputs = _inputs(body.get("input"))
    dimensions = body.get("dimensions") or default_dim
    if not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_DIMENSIONS:
        raise BadRequest(
            f"'dimensions' must be an integer between 1 and {MAX_DIMENSIONS}", param="dimensions"
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    data = []
    prompt_tokens = 0
    for index, item in enumerate(inputs):
        vector = embed(item, dimensions)
        prompt_tokens += estimate_tokens(item) if isinstance(item, str) else len(item)
        encoded: Any = vector
        if encoding == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )


def _inputs(value: Any) -> list[str | list[int]]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        if all(isinstance(v, int) for v in value):
            return [value]
        if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
            return list(value)
    raise BadRequest("'input' must be a string, an array of strings, or token arrays", param="input")
