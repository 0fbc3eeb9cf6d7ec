"""``GET /v1/gateway/shadow`` and the shadow notes of ``gateway policy check``: who may read the report, what it
refuses, how it names models; what the check says about shadow deployments."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy.loader import parse_policy
from gateway.policy.models import ApiKey
from gateway.routing.lint import lint
from tests.shadow_support import ADMIN, chat, shadow_gateway

KEY = "sk-shadow-api-user-0123456789"
POLICY = f"""
name: shadow-api
deployments:
  vendor:    {{type: simulator, model: sim-model, hosting: vendor, price: {{input_per_mtok: 2.5, output_per_mtok: 10}},
               params: {{ttft_ms: 1}}}}
  qwen-self: {{type: simulator, model: sim-model, hosting: self, max_concurrency: 4,
               price: {{input_per_mtok: 0.25, output_per_mtok: 1}}, params: {{ttft_ms: 1}}}}
models:
  support: {{deployments: [vendor], aliases: [helpdesk], shadow: {{deployment: qwen-self, sample: 1}}}}
  plain: {{deployments: [vendor]}}
keys:
  - {{name: user, sha256: "{ApiKey.hash(KEY)}"}}
"""


async def test_only_admin_keys_read_the_report(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        anonymous = await h.client.get("/v1/gateway/shadow")
        user = await h.client.get("/v1/gateway/shadow", headers={"authorization": f"Bearer {KEY}"})
        admin = await h.client.get("/v1/gateway/shadow", headers={"authorization": f"Bearer {ADMIN}"})
    assert anonymous.status_code == 401 and user.status_code == 403 and admin.status_code == 200
    assert user.json()["error"]["type"] == "permission_error"


@pytest.mark.parametrize("params, param", [
    ({"period": "week"}, "period"), ({"model": "nope"}, "model"), ({"model": "plain", "period": ""}, "period"),
])
async def test_bad_queries_are_400_naming_the_param(tmp_path: Path, params: dict[str, str], param: str) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        resp = await h.client.get("/v1/gateway/shadow", params=params, headers={"authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


async def test_an_alias_names_its_model_and_an_unshadowed_model_has_no_pairs(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        resp = await h.client.post("/v1/chat/completions", json=chat("helpdesk", "hi"),
                                   headers={"authorization": f"Bearer {KEY}"})
        assert resp.status_code == 200
        await h.settle()
        by_alias = await h.report("helpdesk")
        plain = await h.report("plain")
        month = await h.report("support", period="month")
    assert by_alias["model"] == "support" and [p["requests"] for p in by_alias["pairs"]] == [1]
    assert plain["pairs"] == [] and plain["model"] == "plain"
    assert month["period"] == "month" and len(month["date"]) == 6 and month["pairs"][0]["requests"] == 1


async def test_another_day_is_empty_not_an_error(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        resp = await h.client.get("/v1/gateway/shadow", params={"date": "19990101"},
                                  headers={"authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 200 and resp.json()["pairs"] == [] and resp.json()["spend_total_usd"] == 0


def test_check_notes_a_shadow_that_cannot_tell_when_its_server_is_busy_and_one_that_is_its_own_primary() -> None:
    policy = parse_policy("""
deployments:
  vendor: {type: openai, model: gpt-4o, hosting: vendor, price: {input_per_mtok: 1, output_per_mtok: 1}}
  qwen-self: {type: vllm, model: q, api_base: "http://127.0.0.1:8000/v1", hosting: self}
  qwen-capped: {type: vllm, model: q, api_base: "http://127.0.0.1:8000/v1", hosting: self, max_concurrency: 2}
models:
  support: {deployments: [vendor], shadow: {deployment: qwen-self, sample: 0.05}}
  both: {deployments: [qwen-capped, vendor], shadow: {deployment: qwen-capped, sample: 0.05}}
  fine: {deployments: [vendor], shadow: {deployment: qwen-capped, sample: 0.05}}
rules:
  - {name: try, when: {team: [default]}, shadow: {deployment: qwen-self, sample: 0.5}}
""").policy
    notes = {(f.path, f.severity): f.message for f in lint(policy)}
    assert set(notes) == {
        (("models", "support", "shadow", "deployment"), "note"),
        (("models", "both", "shadow", "deployment"), "note"),
        (("rules", "0", "shadow", "deployment"), "note"),
    }
    assert "neither max_concurrency nor a load_source" in notes[(("models", "support", "shadow", "deployment"), "note")]
    assert "same_deployment" in notes[(("models", "both", "shadow", "deployment"), "note")]
