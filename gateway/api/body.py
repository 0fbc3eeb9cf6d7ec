"""Read a request body with a size cap: refuse early on Content-Length, and stop reading past the cap."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.types import Receive

from gateway.api.disconnect import ClientGone
from gateway.core.errors import InvalidRequest, RequestTimeout, RequestTooLarge


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int, within: float = 60.0) -> bytes:
    """The whole body from ASGI ``receive``; 413 past ``limit``, 408 past ``within`` seconds (a client
    that trickles its body holds a connection and a task), ``ClientGone`` if the client leaves."""
    try:
        async with asyncio.timeout(within):
            return await _read(receive, headers, limit)
    except TimeoutError:
        raise RequestTimeout(f"The request body was not received within {within:g} seconds.") from None


async def _read(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest("Invalid Content-Length header.") from None
        if size > limit:
            raise RequestTooLarge(f"Request body of {size} bytes exceeds the limit of {limit} bytes.")
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise RequestTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
