"""The official SDKs over the in-process simulator: an httpx transport that calls ``Simulator.handle``.

The SDK sees the same bytes the HTTP server would send (``SimResponse`` is shared), with no socket;
a ``reset`` or mid-stream cut surfaces as the protocol error a dropped connection raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2

from gateway.simulator import CUT_CONNECTION, Simulator


class SimulatorTransport(httpx2.AsyncBaseTransport):
    """Hands each request to ``Simulator.handle`` in this process: the SDK with no socket under it."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        headers = {name.lower(): value for name, value in request.headers.items()}
        answer = await self.simulator.handle(request.method, request.url.raw_path.decode(), headers, body)
        if answer.cut:
            raise httpx2.RemoteProtocolError("the simulator dropped the connection", request=request)
        if answer.stream is None:
            return httpx2.Response(answer.status, headers=answer.headers, content=answer.body)
        return httpx2.Response(answer.status, headers=answer.headers, stream=_Events(answer.stream))


class _Events(httpx2.AsyncByteStream):
    def __init__(self, events: AsyncIterator[bytes]) -> None:
        self._events = events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for event in self._events:
            if event == CUT_CONNECTION:
                raise httpx2.RemoteProtocolError("the simulator dropped the connection mid-stream")
            yield event

    async def aclose(self) -> None:
        await self._events.aclose()  # type: ignore[attr-defined]
