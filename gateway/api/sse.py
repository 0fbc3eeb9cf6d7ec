"""Server-sent events: the response class for streams and the final error event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.core.errors import GatewayError

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"


def sse_error(exc: GatewayError) -> bytes:
    """OpenAI's SDKs raise ``APIError`` on an event carrying an ``error`` object."""
    return b"data: " + orjson.dumps(exc.to_dict()) + b"\n\n"


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class SSEResponse(StreamingResponse):
    """A streaming response that always closes its event iterator, even when the client went away.

    Closing the iterator runs the relay's ``finally``, which closes the upstream connection: a
    disconnected client stops the upstream generation instead of burning GPU time for nobody.
    """

    def __init__(self, events: AsyncIterator[bytes], headers: dict[str, str], background: Any = None) -> None:
        super().__init__(events, media_type="text/event-stream", headers={**SSE_HEADERS, **headers}, background=background)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
