"""One fuzz pass against a real gateway process (``gateway serve``): the same strategies and property as
in-process, over a socket this time, so the server's own HTTP parsing, header handling and error paths
are in the loop. The process must still be running, and answering ``/healthz``, after every example.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given

from tests import servers
from tests.fuzz.properties import ANSWER_BOUND_S, fuzz_settings, record, violation
from tests.fuzz.strategies import SETTINGS_ADMIN_KEY, FuzzRequest, any_request

POLICY = Path(__file__).with_name("policy.yaml")
SUITE = "process"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, httpx.Client]]:
    log = tmp_path_factory.mktemp("fuzz-process") / "gateway.log"
    env = {"GATEWAY_ADMIN_KEY": SETTINGS_ADMIN_KEY, "GATEWAY_ACCESS_LOG": "false", "GATEWAY_POLICY_RELOAD": "false",
           "GATEWAY_MAX_BODY_BYTES": str(256 * 1024)}
    with servers.gateway(POLICY, env=env, log_path=log) as url, httpx.Client(base_url=url, timeout=ANSWER_BOUND_S) as client:
        yield url, client


def _wire_headers(request: FuzzRequest) -> list[tuple[bytes, bytes]]:
    """Header values as a socket can carry them: surrounding whitespace is not part of a field value."""
    return [(name, value.strip(b" \t")) for name, value in request.headers if value.strip(b" \t")]


@fuzz_settings(0.7)
@given(request=any_request())
def test_every_endpoint_against_a_real_process(gateway: tuple[str, httpx.Client], request: FuzzRequest) -> None:
    url, client = gateway
    try:
        resp = client.request(request.method, request.path, headers=_wire_headers(request), content=request.body,
                              params=request.params)
    except httpx.TimeoutException:
        record(SUITE, 0, "hang")
        raise AssertionError(f"no answer within {ANSWER_BOUND_S:g}s to {request.describe()}") from None
    problem = violation(resp.status_code, dict(resp.headers), resp.content, fault_injected=request.fault_injected)
    record(SUITE, resp.status_code, problem, request.operation)
    assert problem is None, f"{request.describe()}\n  → {problem}"
    assert servers.process_of(url).poll() is None, "the gateway process exited"
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
