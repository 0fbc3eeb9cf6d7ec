"""Finding 10, the smaller holes, each tried the way a hostile client or upstream would:

- ``POST /v1/chat/completions/`` (trailing slash) is never redirected to a location built from ``Host``;
- a repeated ``x-data-class`` header counts its most sensitive value, on the proxy routes and on explain alike;
- an 8 KB ``x-request-id`` is not echoed back;
- ``/metrics`` (per-team spend), ``/docs`` and ``/openapi.json`` can be closed to all but the admin key
  (``GATEWAY_METRICS_KEY`` for a scrape credential, ``GATEWAY_DOCS=admin``), while ``/healthz`` and
  ``/readyz`` stay open for probes;
- the concurrency gate keeps its slot count when a hand-over races a timeout, on every Python the
  project admits (3.12 changed ``asyncio.wait_for``);
- an active health check against an upstream that stalls the body does not leak a connection per probe.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import servers
from tests.adversarial.support import ADMIN, ADMIN_KEY, assert_envelope, key_hash, write_policy
from tests.raw_upstream import RawConnection, RawUpstream
from tests.recording_upstream import RecordingUpstream

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("smaller")
    with RecordingUpstream() as vendor, RecordingUpstream() as own:
        policy = write_policy(tmp, f"""
name: smaller
defaults: {{objective: order}}
deployments:
  vendor:
    type: openai
    model: gpt-4o
    api_base: {vendor.api_base}
    api_key: sk-vendor-for-tests
    hosting: vendor
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
  own:
    type: vllm
    model: qwen
    api_base: {own.api_base}
    hosting: self
models:
  gpt-4o: {{deployments: [vendor, own]}}
teams:
  apps: {{budget: {{daily_usd: 100}}}}
keys:
  - {{name: app-key, team: apps, sha256: {key_hash("sk-app")}}}
rules:
  - name: restricted-self-only
    when: {{data_class: [restricted]}}
    require: {{hosting: self}}
""")
        with servers.gateway(policy, env={"GATEWAY_ADMIN_KEY": ADMIN_KEY}, log_path=tmp / "gw.log") as url:
            yield url


APP = {"authorization": "Bearer sk-app"}


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/chat/completions/"), ("POST", "/v1/completions/"), ("POST", "/v1/embeddings/"),
    ("POST", "/v1/gateway/explain/"), ("GET", "/v1/models/"), ("GET", "/healthz/"), ("GET", "/v1/gateway/spend/"),
])
def test_a_trailing_slash_is_never_redirected_to_a_host_derived_location(gateway: str, method: str, path: str) -> None:
    resp = httpx.request(method, gateway + path, json=CHAT if method == "POST" else None,
                         headers={**APP, "host": "evil.example"}, timeout=10, follow_redirects=False)
    location = resp.headers.get("location", "")
    assert "evil.example" not in location and not location.startswith(("http:", "https:", "//")), (
        f"{method} {path} answered {resp.status_code} with location {location!r}")
    assert not 300 <= resp.status_code < 400, f"{method} {path} answered a redirect ({resp.status_code})"
    if resp.status_code >= 400:
        assert_envelope(resp)


@pytest.mark.parametrize("values", [["public", "restricted"], ["restricted", "public"], ["restricted", "internal"]],
                         ids=lambda v: "-then-".join(v))
def test_a_repeated_data_class_header_counts_its_most_sensitive_value(gateway: str, values: list[str]) -> None:
    headers = [("authorization", "Bearer sk-app"), *(("x-data-class", v) for v in values)]
    served = httpx.post(f"{gateway}/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
    assert served.status_code == 200, served.text
    assert served.headers["x-gateway-hosting"] == "self", (
        f"x-data-class sent as {values} was served by the vendor: a repeated header lowered the class")
    explained = httpx.post(f"{gateway}/v1/gateway/explain", json=CHAT, headers=headers, timeout=10)
    assert explained.status_code == 200, explained.text
    assert explained.json()["facts"]["data_class"] == "restricted", "explain reads the header as the proxy route does"


def test_a_comma_joined_data_class_header_never_lowers_the_class(gateway: str) -> None:
    resp = httpx.post(f"{gateway}/v1/chat/completions", json=CHAT,
                      headers={**APP, "x-data-class": "public, restricted"}, timeout=10)
    if resp.status_code == 200:
        assert resp.headers["x-gateway-hosting"] == "self"
    else:
        assert_envelope(resp, status=400)


def test_an_8kb_request_id_is_not_echoed(gateway: str) -> None:
    request_id = "r" * 8192
    for path, body in (("/v1/chat/completions", CHAT), ("/v1/gateway/explain", CHAT)):
        resp = httpx.post(gateway + path, json=body, headers={**APP, "x-request-id": request_id}, timeout=10)
        echoed = [name for name, value in resp.headers.items() if request_id[:1024] in value]
        assert not echoed, f"{path}: the 8 KB x-request-id came back in {echoed}"


PROTECTED = ["/metrics", "/docs", "/openapi.json"]


def test_ops_endpoints_can_be_closed_to_all_but_the_admin_key(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, (ROOT / "tests" / "policies" / "auth.yaml").read_text())
    env = {"GATEWAY_ADMIN_KEY": ADMIN_KEY, "GATEWAY_METRICS_KEY": "scrape-only-key", "GATEWAY_DOCS": "admin"}
    with servers.gateway(policy, env=env, log_path=tmp_path / "gw.log") as url:
        for path in PROTECTED:
            anonymous = httpx.get(url + path, timeout=10)
            assert anonymous.status_code in (401, 403), (
                f"GET {path} without a key answered {anonymous.status_code} with ops protection on")
            assert_envelope(anonymous)
            team_key = httpx.get(url + path, headers={"authorization": "Bearer sk-research-1"}, timeout=10)
            assert team_key.status_code in (401, 403), f"GET {path} with a team's key answered {team_key.status_code}"
            assert httpx.get(url + path, headers=ADMIN, timeout=10).status_code == 200, f"the admin key opens {path}"
        scrape = {"authorization": "Bearer scrape-only-key"}
        assert httpx.get(url + "/metrics", headers=scrape, timeout=10).status_code == 200, "the scrape key reads metrics"
        assert httpx.get(url + "/docs", headers=scrape, timeout=10).status_code in (401, 403), "and nothing else"
        for path in ("/healthz", "/readyz"):
            assert httpx.get(url + path, timeout=10).status_code == 200, f"{path} stays open for probes"


def test_ops_endpoints_are_open_unless_protection_is_asked_for(gateway: str) -> None:
    """The default stays as documented: Prometheus scrapes without a key."""
    assert httpx.get(f"{gateway}/metrics", timeout=10).status_code == 200


def _interpreters() -> list[str]:
    """This interpreter and every CPython 3.12 or later that can be found (PATH, pyenv)."""
    found = {sys.executable}
    for minor in range(12, 16):
        exe = shutil.which(f"python3.{minor}")
        if exe and subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
            found.add(exe)
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found.update(glob.glob(f"{pyenv}/versions/3.1[2-9]*/bin/python3"))
    return sorted(found)


def test_the_concurrency_gate_keeps_its_slots_when_a_hand_over_races_a_timeout() -> None:
    results = []
    for exe in _interpreters():
        out = subprocess.run([exe, str(Path(__file__).with_name("gate_race.py")),
                              str(ROOT / "gateway" / "routing" / "saturation.py"), "300"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))
    versions = [r["python"] for r in results]
    assert any(tuple(int(p) for p in v.split(".")[:2]) >= (3, 12) for v in versions), (
        f"only {versions} found: the race shows on Python 3.12+, which requires-python admits; install one (pyenv)")
    broken = [r for r in results if r["failures"]]
    assert not broken, f"slots lost when a hand-over raced a timeout: {broken}"


async def _stall_models_body(conn: RawConnection) -> None:
    """Answer GET /models with a head promising 1000 bytes, send 10, then hold the connection open."""
    while (request := await conn.read_request()) is not None:
        if request.method == "GET":
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"data\": [")
            await conn.wait_closed_by_peer(within=60)
            return


def test_a_health_check_against_a_stalling_upstream_does_not_leak_connections(tmp_path: Path) -> None:
    with RawUpstream(_stall_models_body) as upstream:
        policy = write_policy(tmp_path, f"""
name: stalling-health
deployments:
  stalling:
    type: vllm
    model: m
    api_base: {upstream.api_base}
    hosting: self
    health_check: {{interval_seconds: 0.3, failures_to_open: 2}}
models:
  auto: {{deployments: [stalling]}}
""")
        with servers.gateway(policy, log_path=tmp_path / "gw.log"):
            time.sleep(5.0)  # ~15 probes
            probes, still_open = upstream.connections_total, upstream.open_connections
        assert probes >= 5, f"only {probes} probes reached the upstream"
        assert still_open <= 2, (
            f"after {probes} health probes against a body that never ends, the gateway held {still_open} "
            "connections open to the upstream")
