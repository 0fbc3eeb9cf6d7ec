"""Finding 8: a deployment's secrets must never come back to the client, whatever the upstream echoes.

The deployment carries an Azure-style ``api-key`` header and a bearer key. Its upstream answers every
request with an error whose body quotes the request headers it received (as some servers and proxies
do), in JSON or as plain text, for the statuses the gateway handles differently (400, 404, 422, 429,
500, 503), streamed or not. Neither secret, nor any twelve-character piece of one, may reach the
client (body or headers) or the gateway's log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.adversarial.support import assert_envelope, write_policy
from tests.raw_upstream import RawRequest
from tests.recording_upstream import RecordingUpstream, Reply

HEADER_SECRET = "azure-header-secret-7f3a9c1e5b2d8f4a6c0e"
BEARER_SECRET = "sk-bearer-secret-1b9d7e3f5a2c4e6a8b0d"
STATUSES = [400, 404, 422, 429, 500, 503]


def _echo_headers(request: RawRequest) -> Reply:
    model = json.loads(request.body).get("model", "")
    kind, status = model.split("-")  # "json-400", "text-503"
    quoted = "; ".join(f"{k}={v}" for k, v in request.headers.items())
    if kind == "json":
        body = json.dumps({"error": {"message": f"Request rejected. Received headers: {quoted}",
                                     "type": "invalid_request_error", "code": quoted[:80]}}).encode()
        return Reply(int(status), body, {"x-upstream-echo": quoted[:200]})
    return Reply(int(status), f"upstream said no; request headers were: {quoted}".encode(), content_type="text/plain")


def _pieces(secret: str, width: int = 12) -> list[str]:
    return [secret[i:i + width] for i in range(len(secret) - width + 1)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("secrets")
    with RecordingUpstream(_echo_headers) as upstream:
        names = [f"{kind}-{status}" for kind in ("json", "text") for status in STATUSES]
        deployments = "".join(
            f"  {name}:\n    type: openai_compatible\n    model: {name}\n    api_base: {upstream.api_base}\n"
            f"    api_key: {BEARER_SECRET}\n    headers: {{api-key: {HEADER_SECRET}}}\n    hosting: self\n"
            f"    retry: {{attempts: 1}}\n    breaker: {{consecutive_failures: 1000, min_calls: 1000}}\n"
            for name in names)
        models = "".join(f"  {name}: {{deployments: [{name}]}}\n" for name in names)
        policy = write_policy(tmp, f"name: secrets\ndeployments:\n{deployments}models:\n{models}")
        log = tmp / "gw.log"
        with servers.gateway(policy, log_path=log) as url:
            yield url, log


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", ["json", "text"])
@pytest.mark.parametrize("status", STATUSES)
def test_secrets_echoed_by_an_upstream_never_reach_the_client(setup, status: int, kind: str, stream: bool) -> None:
    url, log = setup
    body = {"model": f"{kind}-{status}", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert_envelope(resp)
    seen = resp.text + "\n" + "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
    for name, secret in (("api-key header", HEADER_SECRET), ("bearer key", BEARER_SECRET)):
        leaked = [piece for piece in _pieces(secret) if piece in seen]
        assert not leaked, f"the deployment's {name} reached the client ({resp.status_code}): {resp.text[:600]}"
    logged = log.read_text(errors="replace")
    for secret in (HEADER_SECRET, BEARER_SECRET):
        assert not [piece for piece in _pieces(secret) if piece in logged], "a secret reached the gateway's log"
