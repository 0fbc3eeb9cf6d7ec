"""Cancel the work for a request whose client has gone away.

While the upstream is still thinking (a non-streamed completion, or a stream before its first
event), nothing is being written to the client, so the server would not notice a disconnect until
the answer is ready — burning GPU time for nobody. We wait for the answer and for the ASGI
``http.disconnect`` message at once, and cancel the upstream call on the latter. Once a stream is
flowing, the streaming response notices the disconnect itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

T = TypeVar("T")


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class ClientGone(Exception):
    """The client disconnected before its answer was ready; the work for it was cancelled."""


async def cancel_on_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work`` in this task while a watcher cancels it if the client disconnects first.

    (One extra task per request; awaiting ``work`` as a task of its own plus ``asyncio.wait`` cost
    twice as much.)"""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _disconnected(receive)
        gone = True
        current.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise  # cancelled from outside (shutdown)
        current.uncancel()
        raise ClientGone() from None
    finally:
        watcher.cancel()
