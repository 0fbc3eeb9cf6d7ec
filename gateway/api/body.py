"""Read a request body with a size cap: refuse early on Content-Length, and stop reading past the cap."""

from __future__ import annotations

from starlette.requests import Request

from gateway.core.errors import InvalidRequest, RequestTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest("Invalid Content-Length header.") from None
        if size > limit:
            raise RequestTooLarge(f"Request body of {size} bytes exceeds the limit of {limit} bytes.")
        return await request.body()
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise RequestTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
