"""llama-server's real error shapes through the gateway, and what happens to its slot when a client
leaves: context too long (falls back to a larger window, or 400 context_length_exceeded), a bad grammar
(400, not retried elsewhere), "Loading model" while starting (503, falls back), a disconnect that stops
the generation on the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from tests import servers
from tests.realmodel.llama import LlamaServer
from tests.realmodel.support import access_entry

pytestmark = pytest.mark.slow

# ~3,000 tokens for SmolLM2's tokenizer: more than a 2,048-token slot, less than the 8,192 the policy claims.
LONG = [{"role": "user", "content": "apple " * 3000 + "\nHow many apples?"}]


@pytest.fixture(scope="module")
def client(gateway: str) -> OpenAI:
    return OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0, timeout=180)


def vendor_calls(vendor: str) -> int:
    return int(httpx.get(f"{vendor}/sim/stats").json()["by_model"].get("gpt-4o", 0))


def test_a_prompt_longer_than_the_slot_is_the_openai_context_error(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="smollm-8k", messages=LONG, max_tokens=8)
    body = err.value.body
    assert isinstance(body, dict)
    assert (body["code"], body["type"], body["param"]) == ("context_length_exceeded", "invalid_request_error", "messages")
    assert "context" in body["message"], body["message"]  # the server's own words are kept


def test_a_prompt_too_long_for_the_server_falls_back_to_a_larger_window(client: OpenAI, vendor: str,
                                                                       gateway_log: Path) -> None:
    before = vendor_calls(vendor)
    raw = client.chat.completions.with_raw_response.create(model="long-context", messages=LONG, max_tokens=8)
    assert raw.http_response.status_code == 200
    assert raw.headers["x-gateway-deployment"] == "vendor"
    assert raw.headers["x-gateway-fallbacks"] == "smollm-claims-8k:ContextLengthExceeded"
    assert vendor_calls(vendor) == before + 1
    assert access_entry(gateway_log, raw.headers["x-request-id"])["fallbacks"] == ["smollm-claims-8k:ContextLengthExceeded"]


def test_a_correctly_described_window_never_sends_the_long_prompt(client: OpenAI, llama: LlamaServer) -> None:
    before = llama.metrics()["llamacpp:prompt_tokens_total"]
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=LONG, max_tokens=8)
    assert raw.headers["x-gateway-deployment"] == "vendor" and "x-gateway-fallbacks" not in raw.headers
    assert llama.metrics()["llamacpp:prompt_tokens_total"] == before


def test_a_bad_grammar_is_the_callers_error_and_goes_nowhere_else(client: OpenAI, vendor: str) -> None:
    before = vendor_calls(vendor)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], max_tokens=8,
                                       extra_body={"grammar": "root ::= ( \"unclosed"})
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"
    assert "grammar" in body["message"].lower(), body["message"]
    assert err.value.response.headers.get("x-gateway-fallbacks") is None
    assert vendor_calls(vendor) == before, "a request the server called invalid is not sent to the vendor"


def test_a_client_that_leaves_frees_the_servers_slot(gateway: str, llama: LlamaServer, gateway_log: Path) -> None:
    """A long generation is cut off after a few tokens: the gateway closes its upstream connection and
    llama-server stops generating (its slot frees within a second or two instead of running 1,500 tokens)."""
    llama.wait_idle()
    before = llama.metrics()["llamacpp:tokens_predicted_total"]
    body = {"model": "smollm", "stream": True, "max_tokens": 1500, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Tell me a very long story."}]}
    with httpx.stream("POST", f"{gateway}/v1/chat/completions", json=body, timeout=60) as resp:
        assert resp.status_code == 200
        request_id = resp.headers["x-request-id"]
        lines = resp.iter_lines()
        seen = 0
        while seen < 5:
            seen += next(lines).startswith("data: ")
        assert llama.busy_slots() == 1
    left = time.monotonic()
    while llama.busy_slots() and time.monotonic() - left < 10:
        time.sleep(0.05)
    freed_after = time.monotonic() - left
    assert llama.busy_slots() == 0, "the slot still generates for a client that left"
    generated = llama.metrics()["llamacpp:tokens_predicted_total"] - before
    assert generated < 1500 / 2, f"the server generated {generated} tokens for a client that read 5"
    assert access_entry(gateway_log, request_id)["outcome"] == "cancelled"
    print(f"slot freed {freed_after:.2f}s after the client left; {generated:.0f} tokens generated")


# ---------------------------------------------------------------- a server still loading its model
FRESH_POLICY = """
deployments:
  fresh:
    type: llamacpp
    model: smollm2-135m-instruct
    api_base: {llama}/v1
    hosting: self
    price: {{input_per_mtok: 0.1, output_per_mtok: 0.2}}
    retry: {{attempts: 1}}
    breaker: {{consecutive_failures: 100000, min_calls: 100000, window: 100000}}  # starting up is not failing
  vendor:
    type: openai
    model: gpt-4o
    api_base: {vendor}/v1
    api_key: sk-vendor-test
    hosting: vendor
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
models:
  fresh-only: {{deployments: [fresh]}}
  fresh-first: {{deployments: [fresh, vendor], objective: order}}
"""


@pytest.fixture
def fresh(tmp_path: Path, vendor: str) -> Iterator[tuple[LlamaServer, str]]:
    """A gateway pointed at a llama-server that is not started yet (the test starts it)."""
    server = LlamaServer(slots=1, context=512)
    policy = tmp_path / "fresh.yaml"
    policy.write_text(FRESH_POLICY.format(llama=server.url, vendor=vendor))
    with servers.gateway(policy, env={"GATEWAY_ACCESS_LOG": "false"}, log_path=tmp_path / "gateway.log") as url:
        try:
            yield server, url
        finally:
            server.stop()


def test_a_server_loading_its_model_is_unavailable_and_the_request_falls_back(
        fresh: tuple[LlamaServer, str]) -> None:
    server, gateway = fresh
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    loading: list[dict] = []
    fell_back: list[str] = []
    with httpx.Client(base_url=gateway, timeout=30) as http:
        server.launch()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            only = http.post("/v1/chat/completions", json={**body, "model": "fresh-only"})
            if only.status_code == 200:
                break
            error = only.json()["error"]
            # The gateway says "unavailable" in its own words; the server itself says why.
            try:
                health = http.get(f"{server.url}/health")
            except httpx.ConnectError:
                continue  # not listening yet: the gateway's 503 was a refused connection, not loading
            if health.status_code == 503 and "Loading model" in health.text and only.status_code == 503:
                loading.append({"status": only.status_code, **error})
                first = http.post("/v1/chat/completions", json={**body, "model": "fresh-first"})
                fell_back.append(f"{first.status_code} {first.headers.get('x-gateway-deployment')} "
                                 f"{first.headers.get('x-gateway-fallbacks')}")
        else:
            raise AssertionError("the fresh llama-server never answered")
    assert loading, "no request reached the server while it loaded its model (it loads in ~0.5 s)"
    assert {(e["status"], e["type"], e["code"]) for e in loading} == {(503, "upstream_error", "upstream_unavailable")}
    assert set(fell_back) <= {"200 vendor fresh:UpstreamUnavailable", "200 fresh None"}
    assert "200 vendor fresh:UpstreamUnavailable" in fell_back
