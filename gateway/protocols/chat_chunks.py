"""The input side of every stream translator: OpenAI chat chunks, however they arrive.

A translator is fed chunk payloads as dicts, as events from ``core.sse.SSEDecoder``, or as raw bytes
(then it decodes them itself, with the one decoder). ``[DONE]`` marks the normal end of the stream; a
payload that is not a JSON object is an upstream protocol error, reported by the translator as its
client protocol's error event rather than raised into the relay.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.errors import UpstreamProtocolError
from gateway.core.sse import SSEDecoder, SSEEvent

DONE = object()
"""Returned by ``chunk_of`` for the ``[DONE]`` sentinel."""


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: upstream shapes are read, never trusted."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def chunk_of(event: SSEEvent) -> dict[str, Any] | object | None:
    """The chunk an event carries, ``DONE``, or ``None`` for comments and keep-alives."""
    data = event.data
    if data is None:
        return None
    data = data.strip()
    if data == b"[DONE]":
        return DONE
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("The upstream sent a stream event that is not JSON.") from None
    if not isinstance(chunk, dict):
        raise UpstreamProtocolError("The upstream sent a stream event that is not a JSON object.")
    if isinstance(chunk.get("error"), dict):  # an OpenAI-style error event in the middle of a stream
        message = chunk["error"].get("message")
        raise UpstreamProtocolError(f"The upstream failed mid-stream: {message}" if isinstance(message, str)
                                    else "The upstream failed mid-stream.")
    return chunk


class ChunkFeed:
    """Bytes → chunk payloads, through the one SSE decoder (used by ``feed_bytes``)."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = SSEDecoder()

    def events(self, data: bytes) -> list[SSEEvent]:
        return self._decoder.feed(data)

    def finish(self) -> list[SSEEvent]:
        return self._decoder.finish()
