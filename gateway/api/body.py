"""Read a request body with a size cap: refuse early on Content-Length, and stop reading past the cap."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Receive

from gateway.api.disconnect import ClientGone
from gateway.core.errors import InvalidRequest, RequestTooLarge


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    """The whole body from ASGI ``receive``; 413 past ``limit``, ``ClientGone`` if the client leaves."""
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
