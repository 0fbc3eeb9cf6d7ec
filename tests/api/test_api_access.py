"""The gateway's own routes: who may read metrics and docs, and requests that try to confuse the HTTP layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy.models import ApiKey
from tests.inprocess import gateway_client

POLICY = f"""
deployments:
  sim: {{type: simulator, model: m, hosting: self, params: {{output_tokens: 3}}}}
models:
  m: {{deployments: [sim]}}
teams:
  payments: {{data_class: internal}}
keys:
  - {{name: alice, team: payments, sha256: {ApiKey.hash("sk-alice")}}}
  - {{name: root, sha256: {ApiKey.hash("sk-root")}, admin: true}}
"""
ALICE = {"authorization": "Bearer sk-alice"}
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_a_trailing_slash_is_a_plain_404_not_a_redirect(tmp_path: Path) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        resp = await gw.post("/v1/chat/completions/", json=CHAT, headers={**ALICE, "host": "evil.example"})
        assert resp.status_code == 404 and "location" not in resp.headers
        assert resp.json()["error"]["code"] == "unknown_url"


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), (bearer("wrong"), 401), (bearer("sk-alice"), 403), (bearer("scrape-key"), 200),
    (bearer("sk-root"), 200), (bearer("env-admin"), 200),
])
async def test_metrics_need_the_metrics_key_or_an_admin_key_when_one_is_set(
        tmp_path: Path, headers: dict[str, str], status: int) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path, metrics_key="scrape-key",
                              admin_key="env-admin") as gw:
        resp = await gw.get("/metrics", headers=headers)
        assert resp.status_code == status
        if status == 200:
            assert "gateway_requests_total" in resp.text or "gateway_policy_info" in resp.text
        else:
            assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


async def test_metrics_are_open_without_a_metrics_key(tmp_path: Path) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        assert (await gw.get("/metrics")).status_code == 200


@pytest.mark.parametrize(("docs", "headers", "status"), [
    ("open", {}, 200), ("admin", {}, 401), ("admin", ALICE, 403), ("admin", bearer("sk-root"), 200),
    ("off", bearer("sk-root"), 404),
])
async def test_docs_follow_the_docs_setting(tmp_path: Path, docs: str, headers: dict[str, str], status: int) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path, docs=docs) as gw:
        for path in ("/openapi.json", "/docs"):
            assert (await gw.get(path, headers=headers)).status_code == status, path


async def test_a_repeated_data_class_header_counts_its_most_sensitive_value(tmp_path: Path) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        headers = [("authorization", "Bearer sk-alice"), ("x-data-class", "restricted"), ("x-data-class", "public")]
        resp = await gw.post("/v1/gateway/explain", json=CHAT, headers=headers)
        assert resp.status_code == 200 and resp.json()["facts"]["data_class"] == "restricted"
        bad = await gw.post("/v1/gateway/explain", json=CHAT,
                            headers=[*headers[:2], ("x-data-class", "top-secret")])
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-data-class"


async def test_a_repeated_authorization_header_is_not_one_key(tmp_path: Path) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        headers = [("authorization", "Bearer wrong"), ("authorization", "Bearer sk-alice")]
        assert (await gw.post("/v1/chat/completions", json=CHAT, headers=headers)).status_code == 401


@pytest.mark.parametrize("request_id", ["x" * 8192, "a\tb", "id with spaces", "é"])
async def test_an_odd_request_id_is_replaced_not_echoed(tmp_path: Path, request_id: str) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        resp = await gw.post("/v1/chat/completions", json=CHAT,
                             headers=[(b"authorization", b"Bearer sk-alice"), (b"x-request-id", request_id.encode())])
        assert resp.status_code == 200
        assert resp.headers["x-request-id"] != request_id and len(resp.headers["x-request-id"]) == 32


async def test_a_sane_request_id_is_echoed(tmp_path: Path) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        resp = await gw.post("/v1/chat/completions", json=CHAT, headers={**ALICE, "x-request-id": "req-42.a:b"})
        assert resp.headers["x-request-id"] == "req-42.a:b"


@pytest.mark.parametrize("token", ["café", "Ω", "\x00"])
async def test_a_non_ascii_bearer_is_a_401_not_a_500(tmp_path: Path, token: str) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path, admin_key="env-admin") as gw:
        headers = [(b"authorization", b"Bearer " + token.encode())]
        for path in ("/v1/chat/completions", "/v1/gateway/spend", "/v1/models"):
            resp = await gw.request("POST" if "chat" in path else "GET", path, json=CHAT, headers=headers)
            assert resp.status_code == 401, (path, resp.text)


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/chat/completions", "POST"), ("PUT", "/v1/embeddings", "POST"), ("TRACE", "/v1/completions", "POST"),
    ("DELETE", "/v1/models", "GET"), ("POST", "/healthz", "GET"),
])
async def test_a_405_names_the_allowed_methods(tmp_path: Path, method: str, path: str, allow: str) -> None:
    async with gateway_client("", policy_text=POLICY, tmp_path=tmp_path) as gw:
        resp = await gw.request(method, path, headers=ALICE)
        assert resp.status_code == 405 and allow in resp.headers["allow"]
        assert resp.json()["error"]["code"] == "method_not_allowed"
