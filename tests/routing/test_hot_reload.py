"""Hot reload under traffic: a bad file is rejected and the last good policy keeps serving; a good one
is swapped in atomically; SIGHUP reloads at once."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx

from tests import servers

BASE = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}


def _route(url: str) -> tuple[int, str, str]:
    resp = httpx.post(f"{url}/v1/chat/completions", json=BODY, timeout=10)
    return resp.status_code, resp.headers.get("x-gateway-policy-version", ""), resp.headers.get("x-gateway-deployment", "")


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_bad_reload_keeps_traffic_and_good_reload_swaps(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(BASE)
    env = {"GATEWAY_POLICY_RELOAD_INTERVAL": "0.1", "GATEWAY_ACCESS_LOG": "false"}
    with servers.gateway(policy, env=env, log_path=tmp_path / "gw.log") as url:
        status, v1, dep = _route(url)
        assert (status, dep) == (200, "qwen-self")

        results: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    results.append(client.post(f"{url}/v1/chat/completions", json=BODY).status_code)

        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            policy.write_text(BASE.replace("hosting: self\n    origin: CN", "hosting: selfish\n    origin: CN", 1))
            _wait_for(lambda: 'gateway_policy_reloads_total{result="failure"} 1.0' in httpx.get(f"{url}/metrics").text)
            assert _route(url)[:2] == (200, v1), "the last good policy stays active"
            line = BASE.splitlines().index("    hosting: self") + 1  # the first deployment's hosting
            assert f"policy.yaml:{line}:5: deployments.qwen-self.hosting: 'selfish' is not one of self, vendor" in (
                tmp_path / "gw.log").read_text(), "logged at file:line"

            # A good change: `auto` now prefers the vendor deployment by listed order.
            policy.write_text(BASE.replace("  objective: cost", "  objective: order").replace(
                "deployments: [qwen-self, vendor-gpt-4o]", "deployments: [vendor-gpt-4o, qwen-self]"))
            _wait_for(lambda: _route(url)[1] != v1)
            status, v2, dep = _route(url)
            assert (status, dep) == (200, "vendor-gpt-4o")
        finally:
            stop.set()
            worker.join()
        assert results and set(results) == {200}, "no request failed while policies were swapped"


def test_sighup_reloads(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(BASE)
    env = {"GATEWAY_POLICY_RELOAD": "false", "GATEWAY_ACCESS_LOG": "false"}
    with servers.gateway(policy, env=env, log_path=tmp_path / "gw.log") as url:
        v1 = _route(url)[1]
        policy.write_text(BASE + "\n# edited\n")
        time.sleep(0.3)
        assert _route(url)[1] == v1, "without polling, nothing changes until SIGHUP"
        server = servers.process_of(url)
        server.send_signal(signal.SIGHUP)
        _wait_for(lambda: _route(url)[1] != v1)
