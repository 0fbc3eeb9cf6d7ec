"""Response classes that always account for the request, whatever the client does.

Accounting (metrics, access log, spend) runs after the body has been handed to the server, and runs
even when sending fails because the client went away: a plain Starlette background task would be
skipped then, and a request would silently vanish from the numbers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import orjson
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from gateway.core.errors import GatewayError

SSE_HEADERS = ((b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no"))


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


class EventSource(Protocol):
    """What an ``SSEResponse`` sends: chunks of SSE bytes, then ``close`` exactly once."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @property
    def read_on_after_client_left(self) -> bool:
        """Whether to keep reading (without sending) when the client leaves now, rather than cancel."""
        ...

    async def close(self) -> None: ...


class SSEResponse(Response):
    """A stream of SSE events as a bare ASGI response; the source's ``close`` runs once when it ends.

    Starlette's StreamingResponse watches for a disconnect through an anyio task group, which costs
    more per stream than the relaying itself; here a single watcher cancels the sending task when the
    client goes away. That cancellation reaches the relay wherever it waits (usually on the upstream),
    and ``close`` then closes the upstream connection: a disconnected client stops the generation
    instead of burning GPU time for nobody. When the upstream has already finished generating, the
    source may ask to be read to its end instead (to learn the exact usage); sends then go nowhere.
    """

    def __init__(self, source: EventSource, headers: dict[str, str]) -> None:
        # Response.__init__ is not called: this class writes its own ASGI messages. It subclasses
        # Response so that FastAPI routes return it as is.
        self.status_code = 200
        self.background = None
        self.source = source
        self.raw_headers = [*SSE_HEADERS, *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sender = asyncio.current_task()
        assert sender is not None
        gone = asyncio.Event()
        source = self.source

        async def watch() -> None:
            message: Message = await receive()
            while message["type"] != "http.disconnect":
                message = await receive()
            gone.set()
            if not source.read_on_after_client_left:
                sender.cancel()

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in source:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not gone.is_set():
                raise  # cancelled from outside (shutdown): let it propagate
            sender.uncancel()  # the client left; the request is over, not the server
        except OSError:
            pass  # the connection broke while writing
        finally:
            watcher.cancel()
            await source.close()
