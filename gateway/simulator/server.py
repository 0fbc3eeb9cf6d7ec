"""The simulator as a real HTTP server (aiohttp), for tests, demos, benchmarks and ``gateway simulate``.

    run_simulator(host="127.0.0.1", port=8001, ttft_ms=0, fault="flaky=0.1")    # blocking, for the CLI

    async with SimulatorServer(ttft_ms=0) as sim:                               # in tests
        client = openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="x")

    runner, port = await start_simulator(port=0, **config)                      # lower level
    ...
    await runner.cleanup()

Keyword settings are ``SimConfig`` fields (see ``gateway.simulator``). One catch-all route hands every
request to ``Simulator.handle``; keep-alive is on and access logging off, so loopback throughput is
bounded by aiohttp itself (several thousand requests per second per core).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, NoReturn

from aiohttp import web

from gateway.simulator.behaviour import Simulator
from gateway.simulator.config import SimConfig
from gateway.simulator.wire import CUT_CONNECTION

SIMULATOR = web.AppKey("simulator", Simulator)


def build_app(simulator: Simulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SIMULATOR] = simulator
    app.router.add_route("*", "/{tail:.*}", _handle)
    return app


async def _handle(request: web.Request) -> web.StreamResponse:
    simulator = request.app[SIMULATOR]
    body = await request.read() if request.can_read_body else b""
    headers = {name.lower(): value for name, value in request.headers.items()}
    answer = await simulator.handle(request.method, request.raw_path, headers, body)
    if answer.cut:
        _drop_connection(request)
    if answer.stream is None:
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
    response = web.StreamResponse(status=answer.status, headers=answer.headers)
    await response.prepare(request)
    stream = answer.stream
    try:
        async for event in stream:
            if event == CUT_CONNECTION:
                _drop_connection(request)
            await response.write(event)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    await response.write_eof()
    return response


def _drop_connection(request: web.Request) -> NoReturn:
    """Close the socket mid-answer, the way a crashed or reset upstream looks to its client."""
    if request.transport is not None:
        request.transport.close()
    # Raising tells aiohttp the handler ended abnormally, so it writes nothing more.
    raise asyncio.CancelledError


async def start_simulator(host: str = "127.0.0.1", port: int = 0, **config: Any) -> tuple[web.AppRunner, int]:
    """Start serving in the running event loop; returns the runner (``await runner.cleanup()``) and port.

    ``port=0`` picks a free port. ``config`` are ``SimConfig`` fields (``ttft_ms``, ``fault``...).
    """
    simulator = Simulator(SimConfig.from_kwargs(**config))
    runner = web.AppRunner(
        build_app(simulator), access_log=None, handler_cancellation=True, shutdown_timeout=1.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)  # the runner holds the shutdown timeout
    await site.start()
    actual_port = runner.addresses[0][1]
    return runner, actual_port


class SimulatorServer:
    """A simulator on a free loopback port, as an async context manager (or ``start``/``stop``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        self.host, self.port = host, port
        self._config = config
        self._runner: web.AppRunner | None = None

    async def start(self) -> SimulatorServer:
        self._runner, self.port = await start_simulator(self.host, self.port, **self._config)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> SimulatorServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def runner(self) -> web.AppRunner:
        assert self._runner is not None, "server not started"
        return self._runner

    @property
    def simulator(self) -> Simulator:
        assert self._runner is not None, "server not started"
        return self._runner.app[SIMULATOR]

    @property
    def url(self) -> str:
        """Base URL without a path, e.g. ``http://127.0.0.1:54321`` (Anthropic clients use this)."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``<url>/v1``, what OpenAI clients take as ``base_url``."""
        return f"{self.url}/v1"


def run_simulator(host: str = "127.0.0.1", port: int = 8001, **config: Any) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM). ``config`` are ``SimConfig`` fields.

    Example: ``run_simulator("0.0.0.0", 8001, ttft_ms=50, tokens_per_second=40, models=["qwen", "llama"])``.
    Uses uvloop when it is installed.
    """
    app = build_app(Simulator(SimConfig.from_kwargs(**config)))
    loop = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(
        app,
        host=host,
        port=port,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=1.0,
        backlog=1024,
        loop=loop,
        print=lambda *_: print(f"gateway simulator listening on http://{host}:{port} (OpenAI base /v1)"),
    )
