"""Property-based fuzzing of every endpoint, in-process (``httpx.ASGITransport`` against ``create_app``).

One gateway (its lifespan running on an event loop of its own) takes every example of a module: its
cache, limits, spend and breakers carry state from one hostile request to the next, as a real
process's would. Each example checks the property of ``properties.py`` and that ``/healthz`` still
answers. Examples per endpoint follow the active hypothesis profile (``GATEWAY_FUZZ_PROFILE``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given

from gateway.settings import Settings
from tests.fuzz.properties import ANSWER_BOUND_S, fuzz_settings, record, violation
from tests.fuzz.strategies import SETTINGS_ADMIN_KEY, FuzzRequest, get_requests, other_requests, post_requests
from tests.inprocess import InProcessGateway

POLICY = Path(__file__).with_name("policy.yaml")
SUITE = "in-process"


@pytest.fixture(scope="module")
def gateway() -> Iterator[InProcessGateway]:
    settings = Settings(policy=str(POLICY), admin_key=SETTINGS_ADMIN_KEY, access_log=False, policy_reload=False,
                        max_body_bytes=256 * 1024)
    gw = InProcessGateway(settings)
    try:
        yield gw
    finally:
        gw.close()


async def _send(client: httpx.AsyncClient, request: FuzzRequest) -> httpx.Response:
    return await client.request(request.method, request.path, headers=request.headers, content=request.body,
                                params=request.params)


def exercise(gw: InProcessGateway, request: FuzzRequest) -> None:
    try:
        resp = gw.run(_send(gw.client, request), timeout=ANSWER_BOUND_S)
    except TimeoutError:
        record(SUITE, 0, "hang")
        raise AssertionError(f"no answer within {ANSWER_BOUND_S:g}s to {request.method} {request.path}") from None
    problem = violation(resp.status_code, dict(resp.headers), resp.content, fault_injected=request.fault_injected)
    record(SUITE, resp.status_code, problem, request.operation)
    assert problem is None, f"{request.describe()}\n  → {problem}"
    alive = gw.run(gw.client.get("/healthz"), timeout=5)
    assert alive.status_code == 200, "the gateway stopped answering /healthz"


@fuzz_settings()
@given(request=post_requests("chat"))
def test_chat_completions(gateway: InProcessGateway, request: FuzzRequest) -> None:
    exercise(gateway, request)


@fuzz_settings(0.5)
@given(request=post_requests("completions"))
def test_completions(gateway: InProcessGateway, request: FuzzRequest) -> None:
    exercise(gateway, request)


@fuzz_settings(0.5)
@given(request=post_requests("embeddings"))
def test_embeddings(gateway: InProcessGateway, request: FuzzRequest) -> None:
    exercise(gateway, request)


@fuzz_settings(0.5)
@given(request=post_requests("explain"))
def test_explain(gateway: InProcessGateway, request: FuzzRequest) -> None:
    exercise(gateway, request)


@fuzz_settings(0.5)
@given(request=get_requests())
def test_models_spend_and_ops_endpoints(gateway: InProcessGateway, request: FuzzRequest) -> None:
    exercise(gateway, request)


@fuzz_settings(0.3)
@given(request=other_requests())
def test_reload_and_wrong_methods(gateway: InProcessGateway, request: FuzzRequest) -> None:
    exercise(gateway, request)
