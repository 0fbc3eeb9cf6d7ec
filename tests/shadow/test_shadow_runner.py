"""Shadow evaluation through the whole gateway, in process, with simulated upstreams whose answers agree or
disagree on purpose (the simulator's ``variant``): the figures of ``GET /v1/gateway/shadow`` against ones
worked out by hand, every shadow accounted, every drop counted by its reason, and the guarantees — the
client's answer untouched, no confidential request shadowed to a vendor, no cache, rate limit or team
spend touched by a shadow, failures recorded and never surfaced."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from gateway.core.types import BreakerState
from tests.shadow_support import (
    SCHEMA_NUM,
    SCHEMA_STR,
    TOOL_INT,
    TOOL_STR,
    Harness,
    chat,
    json_format,
    shadow_gateway,
)

SIM = "{ttft_ms: 1, output_tokens: 12}"
POLICY = f"""
name: shadow-runner
reference_model: vendor
defaults:
  shadow: {{max_in_flight: 8, max_queued: 32}}
deployments:
  vendor:       {{type: simulator, model: sim-model, hosting: vendor, price: {{input_per_mtok: 2.5, output_per_mtok: 10}},
                  capabilities: [tools, json_schema, json_mode], endpoints: [chat, completions, messages], params: {SIM}}}
  qwen-self:    {{type: simulator, model: sim-model, hosting: self, price: {{input_per_mtok: 0.25, output_per_mtok: 1}},
                  capabilities: [tools, json_schema, json_mode], params: {SIM}}}
  qwen-variant: {{type: simulator, model: sim-model, hosting: self, price: {{input_per_mtok: 0.25, output_per_mtok: 1}},
                  capabilities: [tools, json_schema, json_mode], params: {{ttft_ms: 1, output_tokens: 12, variant: 1}}}}
  other-vendor: {{type: simulator, model: sim-model, hosting: vendor, price: {{input_per_mtok: 1, output_per_mtok: 1}},
                  capabilities: [tools, json_schema, json_mode], params: {SIM}}}
  broken-self:  {{type: simulator, model: sim-model, hosting: self, price: {{input_per_mtok: 0.25, output_per_mtok: 1}},
                  params: {{ttft_ms: 1, fault: "status=500"}}, retry: {{attempts: 1}},
                  breaker: {{consecutive_failures: 100}}}}
models:
  same:       {{deployments: [vendor], shadow: {{deployment: qwen-self, sample: 1}}}}
  variant:    {{deployments: [vendor], shadow: {{deployment: qwen-variant, sample: 1}}}}
  self-first: {{deployments: [qwen-self], shadow: {{deployment: other-vendor, sample: 1}}}}
  itself:     {{deployments: [qwen-self, vendor], objective: order, shadow: {{deployment: qwen-self, sample: 1}}}}
  home:       {{deployments: [qwen-self], shadow: {{deployment: qwen-variant, sample: 1}}}}
  broken:     {{deployments: [vendor], shadow: {{deployment: broken-self, sample: 1}}}}
rules:
  - name: confidential-stays-home
    when: {{data_class_at_least: confidential}}
    require: {{hosting: self}}
"""


async def post(h: Harness, body: dict, path: str = "/v1/chat/completions", **headers: str) -> dict:
    resp = await h.client.post(path, json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json() if not body.get("stream") else {"stream": resp.text}


async def mixed(h: Harness, model: str) -> None:
    """Two texts, a stream, tools with integer and with string arguments, JSON with a bounded number and with
    strings only, a Messages and a Responses request (translated for the chat-only shadow)."""
    await post(h, chat(model, "Say hello."))
    await post(h, chat(model, "Name a colour."))
    await post(h, chat(model, "Tell me a story.", stream=True))
    await post(h, chat(model, "Add 1 and 2.", tools=[TOOL_INT]))
    await post(h, chat(model, "Weather in Paris?", tools=[TOOL_STR]))
    await post(h, chat(model, "Rate it.", response_format=json_format(SCHEMA_NUM)))
    await post(h, chat(model, "Where is the Louvre?", response_format=json_format(SCHEMA_STR)))
    await post(h, {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi from Messages."}]},
               "/v1/messages")
    await post(h, {"model": model, "input": "Hi from Responses."}, "/v1/responses")
    await h.settle()


async def test_identical_answers_agree_everywhere_and_cost_the_price_ratio(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        await mixed(h, "same")
        p = await h.pair("same")
    assert (p["primary"], p["shadow"]) == ("vendor", "qwen-self")
    assert (p["requests"], p["compared"], p["failed"], p["dropped"]) == (9, 9, 0, 0)
    assert (p["tool_call_requests"], p["tool_call_agreement"]) == (2, 1.0)
    assert (p["json_requests"], p["json_agreement"], p["json_valid_primary"], p["json_valid_shadow"]) == (2, 1.0, 1.0, 1.0)
    assert (p["text_requests"], p["text_similarity_mean"], p["length_ratio_mean"]) == (5, 1.0, 1.0)
    assert (p["refusal_rate_primary"], p["refusal_rate_shadow"]) == (0.0, 0.0)
    # The same tokens at a tenth of the price: (0.25 in + 1 out) / (2.5 in + 10 out) per million.
    assert p["cost_ratio"] == 0.1
    assert p["shadow_cost_usd"] == pytest.approx(p["primary_cost_usd"] / 10, rel=1e-6)
    assert p["latency_ratio"] is not None and p["primary_ttft_ms_mean"] is not None


async def test_a_different_model_disagrees_where_its_answers_differ(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        await mixed(h, "variant")
        p = await h.pair("variant")
        lines = h.shadow_lines(model="variant")
    # Variant 1 adds 1 to every number: the integer tool call and the bounded integer disagree; strings agree.
    assert (p["tool_call_requests"], p["tool_call_agreement"]) == (2, 0.5)
    assert (p["json_requests"], p["json_agreement"]) == (2, 0.5)
    assert (p["json_valid_primary"], p["json_valid_shadow"]) == (1.0, 0.5), "stars = 2 is above its maximum of 1"
    calls = {e["tool_calls_agree"] for e in lines if "tool_calls_agree" in e}
    assert calls == {True, False}
    # Text: redrawn words after the same four-word head; the report's mean is the mean of the logged scores.
    texts = [e["text_similarity"] for e in lines if "text_similarity" in e]
    assert len(texts) == p["text_requests"] == 5
    assert all(0 < s < 1 for s in texts)
    assert p["text_similarity_mean"] == pytest.approx(sum(texts) / len(texts), abs=1e-4)
    assert p["length_ratio_mean"] == 1.0, "the variant keeps the answer's length"


async def test_a_text_pair_scored_by_hand(tmp_path: Path) -> None:
    """The shadow's answer is the simulator's variant of the primary's; its F1 worked out here from both texts
    with a tokenizer of its own (ASCII words)."""
    async with shadow_gateway(tmp_path, POLICY) as h:
        primary = (await post(h, chat("variant", "Say hello.")))["choices"][0]["message"]["content"]
        await h.settle()
        simulator = h.api.state.runtime.context.shared["simulators"]["qwen-variant"]
        reply = await simulator.handle("POST", "/v1/chat/completions", {"x-sim-ttft-ms": "0"},
                                       orjson.dumps(chat("sim-model", "Say hello.")))
        logged = h.shadow_lines(model="variant")[0]
    shadow = orjson.loads(reply.body)["choices"][0]["message"]["content"]
    a, b = Counter(re.findall(r"[a-z0-9]+", primary.lower())), Counter(re.findall(r"[a-z0-9]+", shadow.lower()))
    shared = sum((a & b).values())
    precision, recall = shared / sum(b.values()), shared / sum(a.values())
    assert primary != shadow and shared >= 5, "the head 'Simulated answer from sim model' is common to both"
    assert logged["text_similarity"] == round(2 * precision * recall / (precision + recall), 4)
    assert logged["length_ratio"] == round(sum(b.values()) / sum(a.values()), 4)


async def test_every_shadow_is_accounted_and_the_client_never_sees_one(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        answers = []
        for i in range(6):
            resp = await h.client.post("/v1/chat/completions", json=chat("variant", f"question {i}"))
            answers.append(resp)
        await h.settle()
        metrics = await h.metrics()
        requests, shadows = h.request_lines(), h.shadow_lines()
        p = await h.pair("variant")
    for resp in answers:
        assert resp.status_code == 200 and resp.headers["x-gateway-deployment"] == "vendor"
        assert not any("shadow" in k for k in resp.headers), "nothing of the shadow reaches the client"
        assert "qwen-variant" not in resp.text
    sampled = [e for e in requests if e.get("shadow") == "qwen-variant"]
    assert len(sampled) == len(shadows) == p["requests"] == 6
    assert {e["request_id"] for e in sampled} == {e["request_id"] for e in shadows}
    assert all(e["outcome"] == "compared" for e in shadows)
    assert 'gateway_shadow_requests_total{model="variant",outcome="compared",primary="vendor",shadow="qwen-variant"} 6.0' in metrics
    for line in shadows:  # scores only: no text, no prompt
        assert "question" not in orjson.dumps(line).decode() and "Simulated" not in orjson.dumps(line).decode()


async def test_a_confidential_request_is_never_shadowed_to_a_vendor(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        await post(h, chat("self-first", "my card is 4111 1111 1111 1111"))  # detected: confidential
        await post(h, chat("self-first", "internal note"), **{"x-data-class": "confidential"})
        await post(h, chat("self-first", "a public question"))
        await h.settle()
        p = await h.pair("self-first")
        vendor_calls = h.ledger("other-vendor")["total"]
    assert p["drops"] == {"rule_requirement": 2} and p["compared"] == 1
    assert vendor_calls == 1, "only the public request reached the vendor shadow"


async def test_a_failing_shadow_is_recorded_never_surfaced(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        for i in range(3):
            body = await post(h, chat("broken", f"q{i}"))
            assert body["choices"][0]["message"]["content"]
        await h.settle()
        p = await h.pair("broken")
        lines = h.shadow_lines(model="broken")
    assert (p["requests"], p["failed"], p["compared"]) == (3, 3, 0)
    assert p["failures"] == {"UpstreamError": 3}
    assert {e["outcome"] for e in lines} == {"failed"} and {e["reason"] for e in lines} == {"UpstreamError"}


async def test_the_deployment_that_answered_is_not_its_own_shadow(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        await post(h, chat("itself", "hi"))
        await h.settle()
        p = await h.pair("itself")
    assert p["drops"] == {"same_deployment": 1}


async def test_an_open_breaker_drops_the_shadow_and_spares_the_deployment(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        breaker = h.api.state.runtime.breakers["qwen-variant"]
        breaker.force_open()
        assert breaker.state is BreakerState.OPEN
        before = h.ledger("qwen-variant")["total"]
        await post(h, chat("variant", "hi"))
        await h.settle()
        p = await h.pair("variant")
        assert h.ledger("qwen-variant")["total"] == before
    assert p["drops"] == {"breaker_open": 1}


SLOW_SHADOW = POLICY.replace(
    "  broken-self:", "  slow-self:    {type: simulator, model: sim-model, hosting: self, max_concurrency: 1,\n"
    "                  price: {input_per_mtok: 0.25, output_per_mtok: 1}, params: {ttft_ms: 300, output_tokens: 4}}\n"
    "  broken-self:").replace(
    "  broken:", "  slow:       {deployments: [vendor], shadow: {deployment: slow-self, sample: 1}}\n  broken:")


async def test_a_busy_shadow_deployment_drops_shadows_rather_than_queue_them(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, SLOW_SHADOW) as h:
        await asyncio.gather(*(post(h, chat("slow", f"q{i}")) for i in range(3)))
        await h.settle()
        p = await h.pair("slow")
    assert p["compared"] == 1 and p["drops"] == {"saturated": 2}, "one slot: the first shadow has it, two find it taken"


async def test_the_runners_own_bounds_drop_what_does_not_fit(tmp_path: Path) -> None:
    policy = SLOW_SHADOW.replace("max_in_flight: 8, max_queued: 32", "max_in_flight: 1, max_queued: 1")
    async with shadow_gateway(tmp_path, policy) as h:
        for i in range(4):  # sequential: each request is answered before the next is sent
            await post(h, chat("slow", f"q{i}"))
        assert h.shadows.busy == 2, "one under way, one queued"
        await h.settle()
        p = await h.pair("slow")
    assert (p["compared"], p["drops"]) == (2, {"queue_full": 2})


async def test_the_daily_shadow_budget_stops_shadows_and_counts_them(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, POLICY) as h:
        await post(h, chat("same", "what does one cost?"))
        await h.settle()
        one = (await h.pair("same"))["shadow_cost_usd"]
    # A budget for two and a half of those: two are sent, then the third would not fit.
    policy = POLICY.replace("max_in_flight: 8, max_queued: 32", f"max_in_flight: 8, max_queued: 32, daily_budget_usd: {one * 2.5}")
    async with shadow_gateway(tmp_path, policy) as h:
        for _ in range(5):
            await post(h, chat("same", "what does one cost?"))
            await h.settle()
        report = await h.report("same")
        p = report["pairs"][0]
        metrics = await h.metrics()
    assert (p["compared"], p["drops"]) == (2, {"budget": 3})
    assert report["spend_total_usd"] == pytest.approx(2 * one) and report["spend_total_usd"] <= report["daily_budget_usd"]
    assert 'gateway_shadow_dropped_total{model="same",primary="vendor",reason="budget",shadow="qwen-self"} 3.0' in metrics


async def test_shadows_never_touch_the_cache_the_rate_limit_or_the_teams_spend(tmp_path: Path) -> None:
    policy = POLICY.replace("defaults:\n", "defaults:\n  cache: {enabled: true, ttl_seconds: 300}\n") + """
teams:
  default: {rate_limit: {requests_per_minute: 2}}
"""
    async with shadow_gateway(tmp_path, policy) as h:
        body = chat("variant", "cache me", temperature=0)
        first = await h.client.post("/v1/chat/completions", json=body)
        await h.settle()
        await h.api.state.state.cache.drain()  # the primary's answer is written behind
        second = await h.client.post("/v1/chat/completions", json=body)  # the limit's second request
        third = await h.client.post("/v1/chat/completions", json=body)
        await h.settle()
        spend = (await h.client.get("/v1/gateway/spend", headers={"authorization": "Bearer sk-admin-shadow-0123456789"})).json()
        p = await h.pair("variant")
    assert first.status_code == 200 and first.headers["x-gateway-cache"] == "miss"
    assert second.status_code == 200, "the shadow took nothing from the team's requests per minute"
    assert second.headers["x-gateway-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"], "the cache holds the primary's answer, not the shadow's"
    assert third.status_code == 429
    assert p["requests"] == 1, "a cache hit is not shadowed"
    primary_cost, shadow_cost = p["primary_cost_usd"], p["shadow_cost_usd"]
    assert spend["team"] == {"default": pytest.approx(primary_cost)}, "the team pays its answer, never the shadow"
    assert spend["shadow"] == {"qwen-variant": pytest.approx(shadow_cost)}


EMBEDDING = POLICY.replace("shadow: {max_in_flight: 8, max_queued: 32}",
                           "shadow: {max_in_flight: 8, max_queued: 32, embedding_deployment: embedder}").replace(
    "  broken-self:", "  embedder:     {type: simulator, model: sim-embed, hosting: vendor, endpoints: [embeddings],\n"
    "                  price: {input_per_mtok: 0.02}, params: {ttft_ms: 0}}\n  broken-self:")


async def test_text_is_compared_by_embeddings_when_the_policy_names_an_embedder(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, EMBEDDING) as h:
        await post(h, chat("same", "hello"))
        await post(h, chat("variant", "hello"))
        await h.settle()
        same, variant = h.shadow_lines(model="same")[0], h.shadow_lines(model="variant")[0]
        report = await h.report()
    assert same["similarity"] == variant["similarity"] == "embedding_cosine"
    assert same["text_similarity"] == pytest.approx(1.0), "the same text embeds to the same vector"
    assert variant["text_similarity"] < 1.0
    assert report["spend_usd"]["embedder"] > 0, "what the embeddings cost is shadow spend"


async def test_a_request_that_must_stay_home_is_never_embedded_by_a_vendor(tmp_path: Path) -> None:
    async with shadow_gateway(tmp_path, EMBEDDING) as h:
        await post(h, chat("home", "internal"), **{"x-data-class": "confidential"})
        await h.settle()
        line = h.shadow_lines(model="home")[0]
        embedded = h.ledger("embedder")["total"]
    assert line["outcome"] == "compared" and line["similarity"] == "token_f1"
    assert embedded == 0


async def test_shutdown_accounts_for_shadows_still_waiting(tmp_path: Path) -> None:
    policy = SLOW_SHADOW.replace("max_in_flight: 8, max_queued: 32", "max_in_flight: 1, max_queued: 4")
    async with shadow_gateway(tmp_path, policy) as h:
        for i in range(3):
            await post(h, chat("slow", f"q{i}"))
        runner = h.shadows
        await runner.stop()
        lines = h.shadow_lines(model="slow")
    assert [e["outcome"] for e in lines] == ["dropped"] * 3 and {e["reason"] for e in lines} == {"shutdown"}
