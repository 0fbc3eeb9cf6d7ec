"""Response classes that always account for the request, whatever the client does.

Accounting (metrics, access log, spend) runs after the body has been handed to the server, and runs
even when sending fails because the client went away: a plain Starlette background task would be
skipped then, and a request would silently vanish from the numbers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.core.errors import GatewayError

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def sse_error(exc: GatewayError) -> bytes:
    """OpenAI's SDKs raise ``APIError`` on an event carrying an ``error`` object."""
    return b"data: " + orjson.dumps(exc.to_dict()) + b"\n\n"


class AccountedResponse(Response):
    media_type = "application/json"

    def __init__(self, body: bytes, headers: dict[str, str], on_done: Callable[[], None]) -> None:
        super().__init__(body, headers=headers)
        self._on_done = on_done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_done()


class SSEResponse(StreamingResponse):
    """A stream of SSE events; ``on_close`` runs when it ends for any reason.

    Closing runs the relay's cleanup, which closes the upstream connection: a disconnected client
    stops the upstream generation instead of burning GPU time for nobody.
    """

    def __init__(self, events: AsyncIterator[bytes], headers: dict[str, str],
                 on_close: Callable[[], Awaitable[None]]) -> None:
        super().__init__(events, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            await self._on_close()
