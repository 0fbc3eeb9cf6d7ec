"""The least a Python relay can do per event: a TCP pipe on uvloop, one upstream connection per client
connection, bytes passed on untouched in both directions (no HTTP parsing, no SSE, no metering).

Run as its own process: ``python tcp_pipe.py LISTEN_PORT UPSTREAM_PORT``. In the paced-stream phase it
is the reference between nginx (C) and the gateway: what one read and one write per event cost in
Python's event loop on this machine, before any of the gateway's work. It answers ``GET /healthz`` by
passing it to the upstream like everything else.
"""

from __future__ import annotations

import asyncio
import sys


class _Side(asyncio.Protocol):
    """One end of the pipe; ``peer`` is the other end's transport once both are connected."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.early.append(data)  # the client spoke before the upstream connection was up

    def connection_lost(self, exc: Exception | None) -> None:
        peer, self.peer = self.peer, None
        if peer is not None and peer.transport is not None:
            peer.transport.close()


class _Client(_Side):
    def __init__(self, upstream_port: int) -> None:
        super().__init__()
        self.upstream_port = upstream_port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(_Side, "127.0.0.1", self.upstream_port)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        upstream.peer, self.peer = self, upstream
        for data in self.early:
            upstream.transport.write(data)  # type: ignore[union-attr]
        self.early = []


async def _serve(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port), "127.0.0.1", port, backlog=16384)
    async with server:
        await server.serve_forever()


def main() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(_serve(int(sys.argv[1]), int(sys.argv[2])))


if __name__ == "__main__":
    main()
