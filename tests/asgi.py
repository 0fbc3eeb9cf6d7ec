"""The gateway in-process: ``create_app`` behind ``httpx.ASGITransport``, with its lifespan run.

For tests of the HTTP layer that need no real process (signals, workers, real disconnects need one:
see ``servers.py``). Fast, and the HTTP layer counts towards coverage.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from gateway.app import create_app
from gateway.settings import Settings


@contextlib.asynccontextmanager
async def gateway_client(policy: str | Path, *, policy_text: str | None = None, tmp_path: Path | None = None,
                         **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` talking to a gateway built in this process (base URL ``http://gateway``).

    ``policy_text``: write this YAML to ``tmp_path/policy.yaml`` and use it instead of ``policy``."""
    if policy_text is not None:
        assert tmp_path is not None, "policy_text needs tmp_path"
        policy = tmp_path / "policy.yaml"
        policy.write_text(policy_text)
    options = {"policy_reload": False, "access_log": False, **settings}
    app = create_app(Settings.from_env({}, policy=str(policy), **options), CollectorRegistry())
    api = app.app  # type: ignore[attr-defined]
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=30) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
