"""What the simulator core hands back, SSE framing, and the three error body shapes.

``SimResponse`` is transport-neutral: the aiohttp server writes it to a socket, the in-process
``SimulatedProvider`` reads it directly, so both see the same bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

CUT_CONNECTION = b"\x00sim:cut-connection\x00"
"""Stream item meaning "drop the connection now" (no more bytes, no clean end of the body)."""

DONE_EVENT = b"data: [DONE]\n\n"
JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


@dataclass(slots=True)
class SimResponse:
    """One simulated answer: a complete ``body``, or a ``stream`` of SSE events, or a cut connection."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    """Each item is one complete SSE event ending in a blank line, or ``CUT_CONNECTION``."""
    cut: bool = False
    """Drop the connection without sending a response (the ``reset`` fault)."""


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> SimResponse:
    return SimResponse(status, {**JSON_HEADERS, **(headers or {})}, orjson.dumps(obj))


def sse_data(obj: Any) -> bytes:
    """An OpenAI/Gemini style event: ``data: <json>`` and a blank line."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def sse_named(name: str, obj: Any) -> bytes:
    """An Anthropic style event: ``event: <name>``, ``data: <json>`` and a blank line."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def corrupt_event(event: bytes) -> bytes:
    """The same event with its JSON payload cut in half (what a broken upstream looks like)."""
    start = event.rfind(b"data: ") + len(b"data: ")
    payload = event[start:].rstrip(b"\n")
    return event[:start] + payload[: max(1, len(payload) // 2)] + b"\n\n"


def corrupt_body(body: bytes) -> bytes:
    return body[: max(1, len(body) // 2)]


_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout_error", None),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def openai_error(status: int, message: str, param: str | None = None, code: str | None = None) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI sends it (``code``: the status's own)."""
    type_, status_code = _OPENAI_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    code = code or status_code
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def anthropic_error(status: int, message: str, param: str | None = None, code: str | None = None) -> bytes:
    """``{"type": "error", "error": {"type", "message"}}`` as the Messages API sends it (no param, no code)."""
    type_ = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": type_, "message": message}})


_GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_error(status: int, message: str, param: str | None = None, code: str | None = None) -> bytes:
    """``{"error": {"code", "message", "status"}}`` as the Gemini API sends it (its code is the status)."""
    google_status = _GOOGLE_STATUSES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return orjson.dumps({"error": {"code": status, "message": message, "status": google_status}})


class BadRequest(Exception):
    """A request the simulated upstream rejects; rendered in the endpoint's own error shape."""

    def __init__(
        self, message: str, *, param: str | None = None, status: int = 400, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code  # OpenAI's machine-readable code (``integer_below_min_value``...), if one applies
