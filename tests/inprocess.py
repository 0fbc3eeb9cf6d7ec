"""The gateway in-process: ``create_app`` behind ``httpx.ASGITransport``, its lifespan run by us.

Two forms: ``running_app(settings)`` for async tests (an ``httpx.AsyncClient`` while the app's lifespan
is up), and ``InProcessGateway`` for synchronous callers such as hypothesis tests, which owns an event
loop of its own and runs one request at a time on it, so the app, its background tasks and its state
live across many examples.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.settings import Settings

T = TypeVar("T")
BASE_URL = "http://gateway.test"


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan started; requests go through ``httpx.ASGITransport``."""
    app = create_app(settings, registry=CollectorRegistry())
    api = app.app  # type: ignore[attr-defined]  # the FastAPI app behind the proxy fast path owns the lifespan
    async with api.router.lifespan_context(api):
        # An exception the app raised after answering 500 is part of what a test checks, not a test crash.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            client.gateway_api = api  # type: ignore[attr-defined]  # the FastAPI app, for tests that reach its state
            yield client


@contextlib.asynccontextmanager
async def gateway_client(policy: str | Path = "", *, policy_text: str | None = None, tmp_path: Path | None = None,
                         **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """``running_app`` for a policy file, or for ``policy_text`` written to ``tmp_path/policy.yaml``; the
    other keyword arguments are settings (reload and access log off unless given)."""
    if policy_text is not None:
        assert tmp_path is not None, "policy_text needs tmp_path"
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text)
    options = {"policy_reload": False, "access_log": False, **settings}
    async with running_app(Settings.from_env({}, policy=str(policy), **options)) as client:
        yield client


class InProcessGateway:
    """A started in-process gateway for synchronous code: ``gw.run(gw.client.post(...))``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._context = running_app(settings)
        self.client: httpx.AsyncClient = self.loop.run_until_complete(self._context.__aenter__())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the gateway's loop; ``timeout`` turns a hang into ``TimeoutError``."""
        if timeout is not None:
            async def bounded() -> T:
                async with asyncio.timeout(timeout):
                    return await coro
            return self.loop.run_until_complete(bounded())
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self._context.__aexit__(None, None, None))
        finally:
            self.loop.close()
