from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers
from tests.realmodel.llama import LlamaServer

POLICIES = Path(__file__).parent / "policies"


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    """One HTTP simulator for the whole run (base URL without /v1)."""
    with servers.simulator(ttft_ms=5, output_tokens=12) as url:
        yield url


@pytest.fixture(scope="session")
def e2e_gateway(sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway on loopback, in front of the simulator, with the e2e policy."""
    log = tmp_path_factory.mktemp("gw") / "gateway.log"
    env = {"SIM_URL": sim_url, "GATEWAY_MAX_BODY_BYTES": "65536", "GATEWAY_ACCESS_LOG": "true"}
    with servers.gateway(POLICIES / "e2e.yaml", env=env, log_path=log) as url:
        yield url


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    """One real llama-server (SmolLM2-135M, 2 slots) for the whole run: the real-model tier and the
    observability test share it."""
    with LlamaServer(slots=2, context=4096) as server:
        yield server
