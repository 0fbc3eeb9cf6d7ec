"""Finding 9: money fails closed. A vendor deployment whose price the gateway cannot know would cost $0
(ranked first by cost, invisible to budgets): such a policy is refused at load, by ``gateway serve``
and ``gateway policy check``, with file:line errors naming the deployment. A deployment's
``max_output_tokens`` is a cap the upstream sees: a request asking for more never reaches it asking more.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.adversarial.support import assert_envelope, write_policy
from tests.recording_upstream import RecordingUpstream

UNPRICED = {
    "no-price": "",
    "input-price-only": "    price: {input_per_mtok: 2.5}\n",
}


def _unpriced_policy(tmp: Path, price_line: str) -> Path:
    return write_policy(tmp, f"""# a vendor model the bundled price map does not know
name: unpriced
deployments:
  own:
    type: vllm
    model: qwen
    api_base: http://127.0.0.1:9/v1
    hosting: self
    price: {{gpu_hour_usd: 2, tokens_per_second: 2000}}
  acme-vendor:
    type: openai
    model: acme-private-model-2031
    api_base: http://127.0.0.1:9/v1
    api_key: sk-not-used
    hosting: vendor
{price_line}models:
  auto: {{deployments: [own, acme-vendor]}}
""")


def _gateway_command(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str] | None:
    """Run ``python -m gateway ARGS``; ``None`` if it was still running after ``timeout`` (then killed)."""
    proc = subprocess.Popen([sys.executable, "-m", "gateway", *args], cwd=servers.ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        servers.stop(proc)
        return None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


def _names_the_deployment_at_file_line(output: str, path: Path) -> bool:
    return re.search(rf"{re.escape(str(path))}:\d+:\d+:.*acme-vendor", output) is not None


@pytest.mark.parametrize("case", list(UNPRICED))
def test_serve_refuses_a_vendor_deployment_without_a_known_price(tmp_path: Path, case: str) -> None:
    policy = _unpriced_policy(tmp_path, UNPRICED[case])
    result = _gateway_command("serve", "--policy", str(policy), "--port", str(servers.free_port()), timeout=20)
    assert result is not None, "the gateway started serving a policy whose vendor deployment has no known price"
    assert result.returncode != 0, result.stdout
    assert _names_the_deployment_at_file_line(result.stdout, policy), result.stdout[-2000:]


@pytest.mark.parametrize("case", list(UNPRICED))
def test_policy_check_reports_a_vendor_deployment_without_a_known_price(tmp_path: Path, case: str) -> None:
    policy = _unpriced_policy(tmp_path, UNPRICED[case])
    result = _gateway_command("policy", "check", str(policy))
    assert result is not None
    assert result.returncode == 1, f"`policy check` passed an unpriced vendor deployment:\n{result.stdout}"
    assert _names_the_deployment_at_file_line(result.stdout, policy), result.stdout


CAP = 100


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RecordingUpstream]]:
    tmp = tmp_path_factory.mktemp("capped")
    with RecordingUpstream() as upstream:
        policy = write_policy(tmp, f"""
name: capped
deployments:
  capped:
    type: vllm
    model: capped-model
    api_base: {upstream.api_base}
    hosting: self
    context_window: 32768
    max_output_tokens: {CAP}
    retry: {{attempts: 1}}
models:
  auto: {{deployments: [capped]}}
""")
        with servers.gateway(policy, log_path=tmp / "gw.log") as url:
            yield url, upstream


REQUESTS = {
    "chat-max-tokens": ("/v1/chat/completions", {"max_tokens": 20_000}),
    "chat-max-completion-tokens": ("/v1/chat/completions", {"max_completion_tokens": 20_000}),
    "chat-both": ("/v1/chat/completions", {"max_tokens": 50, "max_completion_tokens": 20_000}),
    "chat-stream": ("/v1/chat/completions", {"max_tokens": 20_000, "stream": True}),
    "completions": ("/v1/completions", {"max_tokens": 20_000}),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_a_request_for_more_than_max_output_tokens_never_reaches_the_upstream_asking_more(capped, name: str) -> None:
    url, upstream = capped
    path, fields = REQUESTS[name]
    body = {"model": "auto", **fields}
    body.update({"messages": [{"role": "user", "content": "Write a long essay."}]} if "chat" in path else {"prompt": "Essay:"})
    before = len(upstream.requests)
    resp = httpx.post(url + path, json=body, timeout=30)
    if resp.status_code >= 400:
        assert_envelope(resp)
    for request in upstream.requests[before:]:
        sent = json.loads(request.body)
        asked = {k: sent[k] for k in ("max_tokens", "max_completion_tokens") if isinstance(sent.get(k), int)}
        assert all(v <= CAP for v in asked.values()), (
            f"the upstream was asked for {asked} output tokens; the deployment's cap is {CAP}")
