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


async def cancel_on_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    task: asyncio.Future[T] = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        raise asyncio.CancelledError("client disconnected")
    return task.result()
