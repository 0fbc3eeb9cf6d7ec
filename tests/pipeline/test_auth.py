"""API keys: hashed in the policy, 401 in OpenAI's shape, team model restrictions, loopback-only open mode."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import openai
import pytest
from openai import OpenAI

from tests import servers
from tests.conftest import POLICIES

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory):
    with servers.gateway(POLICIES / "auth.yaml", env={"GATEWAY_ADMIN_KEY": "admin-secret-42"},
                         log_path=tmp_path_factory.mktemp("auth") / "gw.log") as url:
        yield url


def client(url: str, key: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_valid_key_is_served(gw: str) -> None:
    assert client(gw, "sk-research-1").chat.completions.create(model="big", messages=MESSAGES).choices


def test_missing_and_wrong_keys_get_401(gw: str) -> None:
    resp = httpx.post(f"{gw}/v1/chat/completions", json={"model": "auto", "messages": MESSAGES})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError) as err:
        client(gw, "sk-wrong").chat.completions.create(model="auto", messages=MESSAGES)
    assert "sk-wrong" not in err.value.message
    resp = httpx.get(f"{gw}/v1/models", headers={"authorization": "Basic abc"})
    assert resp.status_code == 401


def test_team_model_restriction(gw: str) -> None:
    intern = client(gw, "sk-intern-1")
    assert [m.id for m in intern.models.list()] == ["auto"]
    with pytest.raises(openai.PermissionDeniedError):
        intern.chat.completions.create(model="big", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):
        intern.models.retrieve("big")
    assert {m.id for m in client(gw, "sk-research-1").models.list()} == {"auto", "big"}


def test_admin_reload_needs_admin_key(gw: str) -> None:
    assert httpx.post(f"{gw}/v1/gateway/reload", headers={"authorization": "Bearer sk-research-1"}).status_code == 403
    resp = httpx.post(f"{gw}/v1/gateway/reload", headers={"authorization": "Bearer admin-secret-42"})
    assert resp.status_code == 200 and resp.json()["reloaded"] is True


def test_refuses_public_bind_without_keys() -> None:
    result = subprocess.run([sys.executable, "-m", "gateway", "serve", "--host", "0.0.0.0", "--port", "1"],
                            capture_output=True, text=True, timeout=60, cwd=servers.ROOT)
    assert result.returncode == 2
    assert "refusing to serve" in result.stderr and "defines no API keys" in result.stderr


def test_bad_settings_are_reported() -> None:
    result = subprocess.run([sys.executable, "-m", "gateway", "serve"], capture_output=True, text=True, timeout=60,
                            cwd=servers.ROOT, env={**os.environ, "GATEWAY_PORT": "eighty"})
    assert result.returncode == 2 and "GATEWAY_PORT" in result.stderr
