"""Fixtures of the Responses tests: the simulator over HTTP, and the official SDK against it both over
HTTP and in process (the same simulator behind an httpx transport). A test module that defines its own
``sim`` or ``client`` uses that instead."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import openai
import pytest

from gateway.simulator import Simulator
from gateway.simulator.server import SimulatorServer
from tests.simulator_transport import SimulatorTransport


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(ttft_ms=0, max_hang_s=30) as server:
        yield server


@pytest.fixture(params=["http", "in_process"])
async def client(request: pytest.FixtureRequest, sim: SimulatorServer) -> AsyncIterator[openai.AsyncOpenAI]:
    if request.param == "http":
        sdk = openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key="sk-test", max_retries=0)
    else:
        sdk = openai.AsyncOpenAI(
            base_url="http://in-process/v1",
            api_key="sk-test",
            max_retries=0,
            http_client=httpx2.AsyncClient(transport=SimulatorTransport(Simulator(ttft_ms=0, max_hang_s=30))),
        )
    async with sdk:
        yield sdk
