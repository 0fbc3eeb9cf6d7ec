"""A reload can never do what start-up refuses: open a gateway bound beyond loopback to anyone."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from gateway.app import create_api
from gateway.policy.loader import PolicyError
from gateway.policy.models import ApiKey
from gateway.settings import Settings

KEYED = f"""
deployments:
  sim: {{type: simulator, model: m, hosting: self}}
models:
  m: {{deployments: [sim]}}
keys:
  - {{name: alice, sha256: {ApiKey.hash("sk-alice")}}}
"""
OPEN = KEYED.split("keys:")[0]


def app_for(path: Path, host: str) -> object:
    settings = Settings.from_env({}, policy=str(path), host=host, policy_reload=False, access_log=False)
    return create_api(settings, CollectorRegistry())


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
async def test_a_reload_that_drops_every_key_is_rejected_off_loopback(tmp_path: Path, host: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(KEYED)
    app = app_for(path, host)
    path.write_text(OPEN)
    ok, message = await app.state.reloader.reload_now()  # type: ignore[attr-defined]
    assert not ok and "defines no API keys" in message
    assert app.state.runtime.snapshot.policy.keys, "the last good, keyed policy stays active"  # type: ignore[attr-defined]
    failures = app.state.metrics.registry.get_sample_value(  # type: ignore[attr-defined]
        "gateway_policy_reloads_total", {"result": "failure"})
    assert failures == 1


async def test_the_same_reload_is_fine_on_loopback(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(KEYED)
    app = app_for(path, "127.0.0.1")
    path.write_text(OPEN)
    ok, _ = await app.state.reloader.reload_now()  # type: ignore[attr-defined]
    assert ok and not app.state.runtime.snapshot.policy.keys  # type: ignore[attr-defined]


def test_start_up_refuses_an_open_policy_off_loopback(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(OPEN)
    with pytest.raises(PolicyError, match="defines no API keys"):
        app_for(path, "0.0.0.0")
