"""Server-Sent Events out: one named event as the bytes a client reads (the decoder is core/sse.py)."""

from __future__ import annotations

from typing import Any

import orjson


def named_event(name: str, payload: Any) -> bytes:
    """``event: <name>`` and one ``data:`` line of compact JSON (orjson never writes a raw newline)."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
