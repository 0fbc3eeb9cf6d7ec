"""Prices: the policy's own, else the versioned price map; a vendor deployment priced by neither is a load error."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from gateway.policy import price_map
from gateway.policy.loader import PolicyError, parse_policy


def policy(deployments: str) -> str:
    return textwrap.dedent("""
        deployments:
        {deployments}
        models:
          m: {{deployments: [first]}}
    """).format(deployments=textwrap.indent(textwrap.dedent(deployments), "  "))


def test_an_unpriced_vendor_deployment_is_a_load_error_at_its_line() -> None:
    text = policy("""
        first: {type: openai, model: gpt-4o, hosting: vendor}
        mystery:
          type: openai_compatible
          model: acme-frontier-9000
          api_base: https://api.acme.example/v1
          hosting: vendor
    """)
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "p.yaml")
    [issue] = info.value.issues
    assert issue.file == "p.yaml" and issue.line == text.splitlines().index("  mystery:") + 1
    assert "deployments.mystery" in issue.message and "acme-frontier-9000" in issue.message
    assert "price" in issue.message


def test_prices_come_from_the_policy_then_the_map_and_self_hosted_may_be_free() -> None:
    loaded = parse_policy(policy("""
        first: {type: openai, model: gpt-4o, hosting: vendor}
        own: {type: openai_compatible, model: acme-x, api_base: "https://a.example/v1", hosting: vendor,
              price: {input_per_mtok: 1, output_per_mtok: 2}}
        local: {type: vllm, model: my-finetune, hosting: self}
    """)).policy
    entry = price_map.load()["gpt-4o"]
    assert loaded.deployments["first"].price.per_mtok() == pytest.approx(
        (entry["input_cost_per_token"] * 1e6, entry["output_cost_per_token"] * 1e6))
    assert loaded.deployments["own"].price.per_mtok() == (1, 2)
    assert loaded.deployments["local"].price.per_mtok() == (0, 0)


def test_the_map_is_a_versioned_file_and_refresh_rewrites_it(tmp_path: Path) -> None:
    committed = json.loads(price_map.PATH.read_text())
    assert committed["source"] and committed["refreshed"] and len(committed["models"]) > 1000
    source = tmp_path / "upstream.json"
    source.write_text(json.dumps({
        "sample_spec": {"mode": "chat"},
        "b-model": {"input_cost_per_token": 2e-6, "output_cost_per_token": 4e-6, "mode": "chat", "max_tokens": 9},
        "a-embed": {"input_cost_per_token": 1e-7, "mode": "embedding"},
        "an-image-model": {"input_cost_per_token": 1e-6, "mode": "image_generation"},
    }))
    target = tmp_path / "price_map.json"
    assert price_map.refresh(source, target) == 2
    written = json.loads(target.read_text())
    assert list(written["models"]) == ["a-embed", "b-model"]
    assert written["models"]["b-model"] == {"input_cost_per_token": 2e-6, "output_cost_per_token": 4e-6, "mode": "chat"}
    assert target.read_text().count("\n") == 2 + 2 + 2, "one model per line"


def test_an_input_price_alone_is_complete_only_for_embeddings() -> None:
    embeddings = parse_policy(policy("""
        first: {type: openai_compatible, model: acme-embed, api_base: "https://a.example/v1", hosting: vendor,
                endpoints: [embeddings], price: {input_per_mtok: 0.02}}
    """)).policy
    assert embeddings.deployments["first"].price.per_mtok() == (0.02, 0)
    with pytest.raises(PolicyError, match="no complete price"):
        parse_policy(policy("""
            first: {type: openai_compatible, model: acme-chat, api_base: "https://a.example/v1", hosting: vendor,
                    price: {input_per_mtok: 2.5}}
        """))
