"""What a client is told when a request cannot be served, through the real gateway and the openai SDK.

- Nothing can serve the request because of the request itself → 400 ``invalid_request_error``, which
  the SDKs do not retry, with a ``code`` naming why and every dropped candidate in the message.
- Every target failed → each target and its failure in the gateway's own words (no library text),
  in the message, in ``x-gateway-fallbacks`` and in the access log.
- An upstream "maximum context length" 400 moves on to the next target; another 400 does not.
- ``x-gateway-cache`` is on every cacheable endpoint's answer: ``off`` when the policy does not cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.core.errors import NoRouteAvailable, NoRouteForRequest
from gateway.core.types import Decision, Dropped
from gateway.routing.no_route import no_route_error
from tests import servers
from tests.conftest import POLICIES

HI = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("semantics") / "gateway.log"
    env = {"CLOSED_PORT": str(servers.free_port()), "GATEWAY_ACCESS_LOG": "true"}
    with servers.gateway(POLICIES / "semantics.yaml", env=env, log_path=log) as url:
        yield url, log


def client(url: str, retries: int = 2) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=retries)


def access_log(log: Path, request_id: str) -> list[dict]:
    time.sleep(0.2)  # written behind the response
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"ts":')]
    return [e for e in lines if e["request_id"] == request_id]


def test_an_endpoint_no_candidate_serves_is_a_400_the_sdk_does_not_retry(gateway: tuple[str, Path]) -> None:
    url, log = gateway
    with pytest.raises(openai.BadRequestError) as err:
        client(url).embeddings.create(model="auto", input="hello", extra_headers={"x-request-id": "embed-on-auto"})
    body = err.value.body
    assert err.value.status_code == 400 and err.value.code == "unsupported_endpoint"
    assert body["type"] == "invalid_request_error" and body["param"] == "model"
    assert "self-chat: endpoint_unsupported (does not serve embeddings)" in body["message"]
    assert "vendor-chat: endpoint_unsupported" in body["message"]
    (entry,) = access_log(log, "embed-on-auto")  # one request: the SDK did not retry it
    assert entry["status"] == 400 and entry["error_type"] == "NoRouteForRequest" and entry["fault"] == "caller"


def test_a_capability_no_candidate_has_is_a_400(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    with pytest.raises(openai.BadRequestError) as err:
        client(url).chat.completions.create(model="self-only", messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]}])
    assert err.value.code == "unsupported_capability"
    assert "self-chat: capability_missing (no vision)" in err.value.body["message"]


def test_a_context_length_error_moves_on_to_the_next_target(gateway: tuple[str, Path]) -> None:
    url, log = gateway
    raw = client(url).chat.completions.with_raw_response.create(
        model="long-context", messages=HI, extra_headers={"x-request-id": "too-long-for-small"})
    assert raw.headers["x-gateway-deployment"] == "vendor-chat"
    assert raw.headers["x-gateway-fallbacks"] == "small-window:ContextLengthExceeded"
    (entry,) = access_log(log, "too-long-for-small")
    assert entry["fallbacks"] == ["small-window:ContextLengthExceeded"] and entry["deployment"] == "vendor-chat"


def test_another_upstream_400_is_the_callers_and_is_not_tried_elsewhere(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    with pytest.raises(openai.BadRequestError) as err:
        client(url).chat.completions.create(model="strict", messages=HI)
    assert "Invalid value for 'temperature'" in err.value.body["message"]
    assert "x-gateway-deployment" not in err.value.response.headers


def test_when_every_target_fails_each_is_named_in_the_gateways_words(gateway: tuple[str, Path]) -> None:
    url, log = gateway
    with pytest.raises(openai.InternalServerError) as err:
        client(url, retries=0).chat.completions.create(model="down", messages=HI,
                                                      extra_headers={"x-request-id": "all-down"})
    message = err.value.body["message"]
    assert err.value.status_code == 503
    assert message == "All 2 targets tried failed: down-vllm: unavailable; down-vendor: unavailable."
    for library_text in ("litellm", "object at 0x", "Error:", "Traceback", "httpx", "aiohttp"):
        assert library_text not in message
    fallbacks = err.value.response.headers["x-gateway-fallbacks"]
    assert fallbacks == "down-vllm:UpstreamUnavailable,down-vendor:UpstreamUnavailable"
    (entry,) = access_log(log, "all-down")
    assert entry["fallbacks"] == ["down-vllm:UpstreamUnavailable", "down-vendor:UpstreamUnavailable"]
    assert entry["status"] == 503


def test_cache_header_says_off_when_the_policy_does_not_cache(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    raw = client(url).chat.completions.with_raw_response.create(model="auto", messages=HI, temperature=0)
    assert raw.headers["x-gateway-cache"] == "off"


def test_explain_refuses_a_body_exactly_as_the_http_endpoint_does(gateway: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = gateway
    for body in ({"model": "auto"}, {"model": "auto", "messages": [{"content": "no role"}]}, {"messages": HI}):
        http = httpx.post(f"{url}/v1/gateway/explain", json=body)
        assert http.status_code == 400
        path = tmp_path / "body.json"
        path.write_text(json.dumps(body))
        cli = subprocess.run([sys.executable, "-m", "gateway", "policy", "explain", str(POLICIES / "semantics.yaml"),
                              "--request", str(path)], capture_output=True, text=True, cwd=servers.ROOT,
                             env={"CLOSED_PORT": "1", "PATH": "/usr/bin:/bin"}, timeout=60)
        assert cli.returncode == 1 and "Traceback" not in cli.stderr
        assert http.json()["error"]["message"] in cli.stderr


@pytest.mark.parametrize("kinds, expected, status, code", [
    (["endpoint_unsupported", "endpoint_unsupported"], NoRouteForRequest, 400, "unsupported_endpoint"),
    (["context_too_small", "context_too_small"], NoRouteForRequest, 400, "context_length_exceeded"),
    (["rule_requirement", "capability_missing"], NoRouteForRequest, 400, "no_route_for_request"),
    (["rule_requirement", "rule_requirement"], NoRouteForRequest, 400, "no_compliant_deployment"),
    (["unhealthy", "capability_missing"], NoRouteAvailable, 503, "no_route"),  # health: it may pass
    (["unhealthy", "unhealthy"], NoRouteAvailable, 503, "no_route"),
])
def test_no_route_status_follows_whose_doing_it_is(kinds: list[str], expected: type, status: int, code: str) -> None:
    decision = Decision("d", "auto", (), dropped=tuple(Dropped(f"dep{i}", k, "why") for i, k in enumerate(kinds)))
    error = no_route_error(decision)
    assert type(error) is expected and error.status == status and error.code == code
    assert error.retryable is False
    assert all(f"dep{i}: {k} (why)" in error.message for i, k in enumerate(kinds))
    if status == 400:
        assert error.to_dict()["error"]["type"] == "invalid_request_error"


def test_the_default_policy_caches_deterministic_requests(tmp_path: Path) -> None:
    with servers.gateway(servers.ROOT / "policies" / "default.yaml") as url:
        c = client(url)
        first = c.chat.completions.with_raw_response.create(model="auto", messages=HI, temperature=0)
        time.sleep(0.2)  # the cache is filled after the response
        second = c.chat.completions.with_raw_response.create(model="auto", messages=HI, temperature=0)
        random = c.chat.completions.with_raw_response.create(model="auto", messages=HI)
        assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
        assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
        assert random.headers["x-gateway-cache"] == "bypass"  # not deterministic: never cached
        texts = []
        for _ in range(2):
            texts.append(c.embeddings.with_raw_response.create(model="text-embedding-3-small", input="cache me"))
            time.sleep(0.2)
        assert [t.headers["x-gateway-cache"] for t in texts] == ["miss", "hit"]
        stream = c.chat.completions.with_raw_response.create(model="auto", messages=HI, temperature=0, stream=True)
        assert stream.headers["x-gateway-cache"] == "hit"  # a streamed request served from the stored answer
