"""Finding 2: a policy reload must not open a gateway bound to a non-loopback address.

The gateway serves on 0.0.0.0 (traffic is only ever sent to 127.0.0.1) with a keyed policy. The file
is rewritten without ``keys:``; the file watcher, SIGHUP and ``POST /v1/gateway/reload`` must each
reject it like any invalid policy: the last good (keyed) policy stays, an unauthenticated request is
still refused with 401, and each rejection is counted and logged.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx

from tests import servers
from tests.adversarial.support import (
    ADMIN,
    ADMIN_KEY,
    assert_envelope,
    key_hash,
    metric,
    wait_for,
    write_policy,
)

BASE = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()
KEYS = f"""
teams:
  apps: {{}}
keys:
  - name: app-key
    team: apps
    sha256: {key_hash("sk-app-key-1")}
"""
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
FAILURES = ("gateway_policy_reloads_total", {"result": "failure"})


def _unauthenticated(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=BODY, timeout=10)


def _assert_still_locked(url: str, after: str) -> None:
    resp = _unauthenticated(url)
    assert resp.status_code == 401, (
        f"after {after}, a request without a key got {resp.status_code} "
        f"(served as {resp.headers.get('x-gateway-deployment')!r}): the reload opened the gateway")
    assert_envelope(resp, status=401)
    keyed = httpx.post(f"{url}/v1/chat/completions", json=BODY, headers={"authorization": "Bearer sk-app-key-1"}, timeout=10)
    assert keyed.status_code == 200, "the last good policy (with its keys) still serves"


def _failures(url: str) -> float:
    return metric(url, FAILURES[0], **FAILURES[1])


def test_a_reload_that_would_drop_every_key_on_a_public_bind_is_rejected(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, BASE + KEYS)
    log = tmp_path / "gateway.log"
    env = {"GATEWAY_POLICY_RELOAD_INTERVAL": "0.2", "GATEWAY_ADMIN_KEY": ADMIN_KEY, "GATEWAY_ACCESS_LOG": "false",
           "GATEWAY_ALLOW_UNAUTHENTICATED": "false"}
    with servers.gateway(policy, env=env, extra=["--host", "0.0.0.0"], log_path=log) as url:
        _assert_still_locked(url, "start-up")
        version = httpx.post(f"{url}/v1/chat/completions", json=BODY, headers={"authorization": "Bearer sk-app-key-1"},
                             timeout=10).headers["x-gateway-policy-version"]
        failures = _failures(url)

        policy.write_text(BASE + "\n# keys removed\n")  # a valid policy in every other respect
        time.sleep(1.5)  # several poll intervals
        _assert_still_locked(url, "the file watcher saw the keyless policy")
        wait_for(lambda: _failures(url) >= failures + 1, timeout=10, what="the watcher's rejection counted")

        servers.process_of(url).send_signal(signal.SIGHUP)
        wait_for(lambda: _failures(url) >= failures + 2, timeout=10, what="the SIGHUP reload's rejection counted")
        _assert_still_locked(url, "SIGHUP")

        resp = httpx.post(f"{url}/v1/gateway/reload", headers=ADMIN, timeout=10)
        assert resp.status_code == 422 and resp.json()["reloaded"] is False, resp.text
        assert re.search(r"(?i)key", resp.json()["message"]), f"the rejection says why: {resp.json()['message']!r}"
        assert _failures(url) >= failures + 3
        _assert_still_locked(url, "POST /v1/gateway/reload")

        served = httpx.post(f"{url}/v1/chat/completions", json=BODY, headers={"authorization": "Bearer sk-app-key-1"},
                            timeout=10)
        assert served.headers["x-gateway-policy-version"] == version, "the last good policy is still the active one"
        text = log.read_text(errors="replace")
        assert re.search(r"(?is)reload.{0,2000}\bkeys?\b", text), "the rejection is logged with its reason:\n" + text[-3000:]
