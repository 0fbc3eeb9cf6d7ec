"""The dashboard and the alert rules against a real Prometheus scraping a live gateway.

Starts the upstream simulator, the run's real llama-server (SmolLM2-135M, 2 slots), two gateways (A:
in-process state; B: pointed at a Redis that is not there) and Debian's ``prometheus`` server scraping
both every second as job="gateway", and llama-server's own /metrics as job="llamacpp", with
observability/prometheus/alerts.yml loaded. Drives a mix of traffic through A (self-hosted and vendor
deployments, streamed and not, upstream faults with retries and fallbacks, an open breaker, cache hits,
budget and rate-limit refusals, caller errors, a policy denial, bursts beyond llama-server's slots under
a latency SLO that spill to the vendor, a hot reload that succeeds and one that fails), then:
- evaluates every query of the Grafana dashboard (variables set to All) and requires data for each;
- requires every alert rule to load and evaluate without error, its signal to have data, and the
  alerts this traffic must trigger to be pending or firing (and the others not).
Finally draws the README picture from Prometheus with observability/plot_from_prometheus.py.

Needs ``prometheus`` (Debian package) and matplotlib: .ci/install-observability-tools.sh installs both.
Set OBSERVABILITY_PLOT_TO=docs/img/dashboard-from-prometheus.png to refresh the README picture, and
OBSERVABILITY_TRAFFIC_ROUNDS (default 8) for a longer run.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.policy.models import ApiKey
from tests import servers
from tests.observability.test_dashboard import INSTALL_HINT, load_dashboard, substitute, target_id, targets
from tests.realmodel.llama import LlamaServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "observability" / "prometheus" / "alerts.yml"
PLOT = ROOT / "observability" / "plot_from_prometheus.py"

SECRETS = {team: f"sk-{team}-0123456789abcdef" for team in ("research", "support", "tiny", "limited")}

POLICY = """
name: prom-test
reference_model: vendor-gpt
defaults:
  cache: {{enabled: true, ttl_seconds: 300}}
deployments:
  qwen-self:
    type: vllm
    model: qwen2.5-7b-instruct
    api_base: {sim}/v1
    headers: {{x-sim-ttft-ms: "15"}}
    hosting: self
    origin: CN
    price: {{gpu_hour_usd: 2.0, tokens_per_second: 2000}}
    capabilities: [tools, json_schema]
  vendor-gpt:
    type: openai
    model: gpt-4o
    api_base: {sim}/v1
    api_key: sk-test
    headers: {{x-sim-ttft-ms: "40"}}
    hosting: vendor
    origin: US
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
    capabilities: [tools, json_schema, vision]
  flaky-self:          # about 1 call in 4 fails (seeded): retries, fallbacks, an error ratio over 5%
    type: vllm
    model: qwen2.5-7b-flaky-replica
    api_base: {sim}/v1
    headers: {{x-sim-fault: "flaky=0.25;status=503", x-sim-ttft-ms: "15"}}
    hosting: self
    price: {{gpu_hour_usd: 2.0, tokens_per_second: 2000}}
    retry: {{attempts: 2, backoff_initial_ms: 1}}
  smollm:              # the real llama-server; its own queue decides when bursts spill to the vendor
    type: llamacpp
    model: smollm2-135m-instruct
    api_base: {llama}/v1
    hosting: self
    price: {{gpu_hour_usd: 0.5, tokens_per_second: 200}}
    latency_prior: {{ttft_ms: 0.4, tokens_per_second: 20000}}  # meets story-slo, until measured
    load_source: {{type: llamacpp, interval_seconds: 0.5}}
    retry: {{attempts: 1}}
  vendor-spill:        # where story bursts spill: its prior meets story-slo until it is measured
    type: openai
    model: gpt-4o-mini
    api_base: {sim}/v1
    api_key: sk-test
    hosting: vendor
    price: {{input_per_mtok: 2.5, output_per_mtok: 10}}
    latency_prior: {{ttft_ms: 0.1, tokens_per_second: 1000000}}
  broken-self:         # always 503: its breaker opens
    type: vllm
    model: qwen2.5-7b-broken-replica
    api_base: {sim}/v1
    headers: {{x-sim-fault: "status=503"}}
    hosting: self
    retry: {{attempts: 2, backoff_initial_ms: 1}}
models:
  auto: {{deployments: [qwen-self, vendor-gpt]}}
  gpt-4o: {{deployments: [vendor-gpt], shadow: {{deployment: qwen-self, sample: 1}}}}   # shadow evaluation
  qwen: {{deployments: [qwen-self], shadow: {{deployment: broken-self, sample: 1}}}}      # shadows fail, then drop
  mostly-self: {{deployments: [flaky-self, vendor-gpt], objective: order}}
  broken: {{deployments: [broken-self, vendor-gpt], objective: order}}
  story: {{deployments: [smollm, vendor-spill]}}
teams:
  research: {{budget: {{daily_usd: 10, monthly_usd: 100}}}}
  support: {{}}
  tiny: {{budget: {{daily_usd: 0.0005}}}}
  limited: {{rate_limit: {{requests_per_minute: 3}}}}
keys:
{keys}
rules:
  - name: block-export
    when: {{headers: {{x-export: ["yes"]}}}}
    deny: exports are not allowed by policy
  - name: interactive
    when: {{headers: {{x-tier: [interactive]}}}}
    objective: latency
    latency_slo_ms: 1
  - name: story-slo      # 8 tokens: 0.8 ms expected in-house by the prior; a third request at once waits past 1 ms
    when: {{model: [story]}}
    latency_slo_ms: 1
"""


def write_policy(path: Path, sim: str, llama: str, note: str = "") -> None:
    keys = "\n".join(f"  - {{name: k-{team}, team: {team}, sha256: {ApiKey.hash(secret)}}}"
                     for team, secret in SECRETS.items())
    path.write_text(POLICY.format(sim=sim, llama=llama, keys=keys) + (f"# {note}\n" if note else ""))


# ---------------------------------------------------------------- Prometheus
def prom_get(base: str, path: str, **params: Any) -> dict[str, Any]:
    """GET a Prometheus API endpoint; a 400/422 answer (bad query) comes back as its JSON body."""
    url = f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 422):
            return json.load(exc)
        raise


@contextlib.contextmanager
def prometheus(targets_: list[str], workdir: Path, model_servers: list[str]) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(f"prometheus not found: {INSTALL_HINT}")
    port = servers.free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "gateway", "metrics_path": "/metrics",
                            "static_configs": [{"targets": targets_}]},
                           {"job_name": "llamacpp", "metrics_path": "/metrics",
                            "static_configs": [{"targets": model_servers}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log_path = workdir / "prometheus.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            servers.wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=60, proc=proc, log_path=log_path)
            yield f"http://127.0.0.1:{port}"
        finally:
            servers.stop(proc)


def wait_for_scrape_after(base: str, moment: float, timeout: float = 30) -> None:
    """Until every gateway target has been scraped (successfully) after ``moment``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = prom_get(base, "/api/v1/query", query='timestamp(up{job="gateway"} == 1)')["data"]["result"]
        if len(result) == 2 and all(float(r["value"][1]) > moment for r in result):
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus did not scrape both gateways after {moment}: {result}")


def hold_generation_until_scraped(base: str, llama: str, timeout: float = 30) -> None:
    """One long generation on llama-server, held open until Prometheus has scraped its in-flight gauge at 1 or
    more: the bursts are short enough to fall between two scrapes, so they alone do not prove the scrape."""
    done = threading.Event()

    def generate() -> None:
        body = chat("smollm", "tell a long story", max_tokens=1500, stream=True, ignore_eos=True)
        with httpx.Client(base_url=llama, timeout=60) as client, \
                client.stream("POST", "/v1/chat/completions", json=body) as resp:
            for _ in resp.iter_bytes():
                if done.is_set():
                    return  # leaving closes the connection, and llama-server frees the slot

    worker = threading.Thread(target=generate)
    worker.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = prom_get(base, "/api/v1/query", query='llamacpp:requests_processing{job="llamacpp"} >= 1')
            if seen["data"]["result"]:
                return
            time.sleep(0.25)
        raise AssertionError("Prometheus never scraped llama-server with a request in flight")
    finally:
        done.set()
        worker.join(timeout=60)


# ---------------------------------------------------------------- traffic
def chat(model: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 16, **extra}


TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
JSON_ANSWER = {"type": "json_schema", "json_schema": {"name": "place", "schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@dataclass
class Traffic:
    statuses: dict[str, list[int]] = field(default_factory=dict)

    def send(self, client: httpx.Client, label: str, body: dict[str, Any] | bytes, team: str = "support",
             headers: dict[str, str] | None = None) -> None:
        """Every request carries a key: once a policy lists keys, the gateway requires one."""
        hdrs = {"content-type": "application/json", "authorization": f"Bearer {SECRETS[team]}", **(headers or {})}
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        stream = isinstance(body, dict) and body.get("stream", False)
        with client.stream("POST", "/v1/chat/completions", content=content, headers=hdrs) as resp:
            for _ in resp.iter_bytes():  # read streams to the end, like a client would
                pass
            self.statuses.setdefault(label + (" (stream)" if stream else ""), []).append(resp.status_code)


def story_burst(t: Traffic, client: httpx.Client, r: int, n: int = 4) -> None:
    """``n`` short streamed generations at once for llama-server's 2 slots: the first burst spills the ones
    beyond the slots (later ones go to the vendor anyway: the measured latency misses the SLO)."""
    body = [chat("story", f"round {r} story {i}", max_tokens=8, stream=True) for i in range(n)]
    threads = [threading.Thread(target=t.send, args=(client, "story burst", b)) for b in body]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def drive(a: httpx.Client, b: httpx.Client, rounds: int) -> Traffic:
    t = Traffic()
    image = {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}
    for r in range(rounds):
        for i in range(2):
            t.send(a, "auto research", chat("auto", f"round {r} question {i}"), team="research")
        t.send(a, "auto research", chat("auto", f"round {r} stream", stream=True), team="research")
        surge = rounds // 3 <= r < 2 * rounds // 3  # a vendor surge in the middle third: the split moves
        for i in range(5 if surge else 1):
            t.send(a, "gpt-4o support", chat("gpt-4o", f"round {r} vendor {i}"), team="support")
        t.send(a, "gpt-4o support", chat("gpt-4o", f"round {r} vendor stream", stream=True), team="support")
        t.send(a, "gpt-4o support", chat("gpt-4o", f"round {r} weather?", tools=[TOOL]), team="support")
        t.send(a, "gpt-4o support", chat("gpt-4o", f"round {r} where?", response_format=JSON_ANSWER), team="support")
        t.send(a, "qwen support", chat("qwen", f"round {r} self stream", stream=True))
        t.send(a, "qwen support", chat("qwen", f"round {r} self"))
        for i in range(2):
            t.send(a, "mostly-self (flaky)", chat("mostly-self", f"round {r} flaky {i}"))
        t.send(a, "broken (fallback)", chat("broken", f"round {r} broken"))
        for _ in range(2):  # deterministic and identical: the second, and every later round, is a cache hit
            t.send(a, "cacheable", chat("auto", "what is 2 + 2?", temperature=0), team="research")
        t.send(a, "tiny budget", chat("gpt-4o", f"round {r} spend"), team="tiny")
        t.send(a, "rate limited", chat("qwen", f"round {r} limited"), team="limited")
        t.send(a, "caller error", b'{"model": "auto"}')
        t.send(a, "policy denied", chat("auto", f"round {r} export"), headers={"x-export": "yes"})
        t.send(a, "vision", {"model": "auto", "messages": [image], "max_tokens": 16})
        t.send(a, "slo tier", chat("auto", f"round {r} fast please"), headers={"x-tier": "interactive"})
        t.send(b, "gateway B", chat("auto", f"round {r} on B"), team="research")
        if r % 3 == 0:
            story_burst(t, a, r)
        time.sleep(1.0)
    return t


@dataclass
class Stack:
    prom: str
    gateway_a: str
    gateway_b: str
    started: float
    at: float  # evaluation time for the assertions: after the traffic and a scrape
    traffic: Traffic
    workdir: Path
    llama: str

    def instance(self, url: str) -> str:
        return url.removeprefix("http://")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, llama: LlamaServer) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("prom")
    policy = workdir / "policy.yaml"
    rounds = int(os.environ.get("OBSERVABILITY_TRAFFIC_ROUNDS", "8"))
    with contextlib.ExitStack() as es:
        sim = es.enter_context(servers.simulator(ttft_ms=5, output_tokens=12))
        write_policy(policy, sim, llama.url)
        env = {"GATEWAY_POLICY_RELOAD_INTERVAL": "0.5", "GATEWAY_ACCESS_LOG": "false"}
        gw_a = es.enter_context(servers.gateway(policy, env=env, log_path=workdir / "gateway-a.log"))
        dead_redis = f"redis://127.0.0.1:{servers.free_port()}/0"
        port_b = servers.free_port()
        es.enter_context(servers.running(
            ["serve", "--policy", str(policy), "--port", str(port_b), "--redis-url", dead_redis],
            f"http://127.0.0.1:{port_b}/healthz", {**env, "GATEWAY_POLICY_RELOAD": "false"}, workdir / "gateway-b.log"))
        gw_b = f"http://127.0.0.1:{port_b}"
        prom = es.enter_context(prometheus([gw_a.removeprefix("http://"), gw_b.removeprefix("http://")], workdir,
                                           [llama.url.removeprefix("http://")]))
        started = time.time()
        wait_for_scrape_after(prom, started)  # every counter is seen at its starting value first

        a = es.enter_context(httpx.Client(base_url=gw_a, timeout=30))
        b = es.enter_context(httpx.Client(base_url=gw_b, timeout=30))
        traffic = drive(a, b, rounds)
        hold_generation_until_scraped(prom, llama.url)

        # Hot reloads: one that succeeds, then a broken file that must be refused (the last good one stays).
        write_policy(policy, sim, llama.url, note="reloaded")
        time.sleep(1.5)
        policy.write_text("deployments: [this is not a policy\n")
        time.sleep(1.5)
        assert a.get("/readyz").status_code == 200, "a failed reload must keep the gateway serving"

        end = time.time()
        wait_for_scrape_after(prom, end)
        time.sleep(2.5)  # a few rule evaluations after that scrape
        print("traffic:", json.dumps({k: sorted(set(v)) for k, v in traffic.statuses.items()}))
        yield Stack(prom, gw_a, gw_b, started, time.time(), traffic, workdir, llama.url)


def query(stack: Stack, expr: str) -> dict[str, Any]:
    return prom_get(stack.prom, "/api/v1/query", query=expr, time=f"{stack.at:.3f}")


def query_range(stack: Stack, expr: str) -> dict[str, Any]:
    return prom_get(stack.prom, "/api/v1/query_range", query=expr, start=f"{stack.started:.3f}",
                    end=f"{stack.at:.3f}", step="1")


def finite_values(result: dict[str, Any]) -> list[float]:
    data = result["data"]
    rows = data["result"]
    if data["resultType"] == "matrix":
        values = [float(v) for row in rows for _, v in row["values"]]
    elif data["resultType"] == "vector":
        values = [float(row["value"][1]) for row in rows]
    else:  # scalar
        values = [float(rows[1])]
    return [v for v in values if math.isfinite(v)]


# ---------------------------------------------------------------- the gateway is scraped, traffic went through
def test_prometheus_scrapes_both_gateways(stack: Stack) -> None:
    result = query(stack, 'up{job="gateway"}')["data"]["result"]
    assert {r["metric"]["instance"]: r["value"][1] for r in result} == {
        stack.instance(stack.gateway_a): "1", stack.instance(stack.gateway_b): "1"}


def test_prometheus_scrapes_the_real_llama_server(stack: Stack) -> None:
    result = query(stack, 'up{job="llamacpp"}')["data"]["result"]
    assert [(r["metric"]["instance"], r["value"][1]) for r in result] == [(stack.instance(stack.llama), "1")]
    peak = finite_values(query(stack, f'max_over_time(llamacpp:requests_processing{{job="llamacpp"}}[{_window(stack)}])'))
    assert peak and peak[0] >= 1, "the server's own in-flight gauge was scraped with a request in it"


def test_the_gateway_view_of_the_server_load_and_its_spills(stack: Stack) -> None:
    window = _window(stack)
    # One series per gateway (both poll the server); Prometheus returns them in no set order.
    running = finite_values(query(stack, f'max(max_over_time(gateway_upstream_server_requests{{deployment="smollm", state="running"}}[{window}]))'))
    assert running and running[0] >= 1, "the gateway's polls saw the server busy"
    slots = finite_values(query(stack, 'gateway_upstream_server_slots{deployment="smollm"}'))
    assert set(slots) == {2.0}, "the slot count comes from llama-server's /props"
    spills = finite_values(query(stack, 'sum(gateway_load_spills_total{deployment="smollm"})'))
    assert spills and spills[0] >= 1, "bursts beyond the two slots spilled to the vendor"
    served = set(stack.traffic.statuses["story burst (stream)"])
    assert served == {200}


def _window(stack: Stack) -> str:
    return f"{int(stack.at - stack.started) + 5}s"


def test_traffic_mix_reached_the_gateway(stack: Stack) -> None:
    s = stack.traffic.statuses
    assert set(s["auto research"]) == {200} and set(s["auto research (stream)"]) == {200}
    assert set(s["gpt-4o support (stream)"]) == {200} and set(s["qwen support (stream)"]) == {200}
    assert set(s["mostly-self (flaky)"]) == {200}, "flaky-self's failures must be absorbed by retry/fallback"
    assert set(s["broken (fallback)"]) == {200}, "broken-self must fall back to vendor-gpt"
    assert 400 in s["caller error"] or 422 in s["caller error"]
    assert set(s["policy denied"]) == {403}


def test_shadow_metrics_count_what_the_traffic_did(stack: Stack) -> None:
    """Every answered gpt-4o request was shadowed on qwen-self and compared; the same simulator answers tool calls
    and JSON from the schema alone, so both agree; qwen's shadows on broken-self failed until its breaker
    opened, then were dropped."""
    s = stack.traffic.statuses
    answered = sum(v.count(200) for k, v in s.items() if k.startswith("gpt-4o support")) + s["tiny budget"].count(200)
    compared = finite_values(query(stack, 'sum(gateway_shadow_requests_total{model="gpt-4o", outcome="compared"})'))
    assert compared == [float(answered)]
    for kind in ("tool_calls", "json"):
        rate = finite_values(query(stack, f'sum(gateway_shadow_agreement_sum{{kind="{kind}"}}) / sum(gateway_shadow_agreement_count{{kind="{kind}"}})'))
        assert rate == [1.0], kind
    failed = finite_values(query(stack, 'sum(gateway_shadow_requests_total{shadow="broken-self", outcome="failed"})'))
    dropped = finite_values(query(stack, 'sum(gateway_shadow_dropped_total{shadow="broken-self", reason="breaker_open"})'))
    assert failed and failed[0] >= 1 and dropped and dropped[0] >= 1


@pytest.mark.parametrize("name, expected", [("deployment", {"qwen-self", "vendor-gpt", "flaky-self"}),
                                            ("team", {"research", "support", "tiny", "limited"})])
def test_dashboard_variables_have_values(stack: Stack, name: str, expected: set[str]) -> None:
    body = prom_get(stack.prom, f"/api/v1/label/{name}/values", **{"match[]": "gateway_requests_total"})
    assert expected <= set(body["data"]), body["data"]


# ---------------------------------------------------------------- every dashboard query, for real
DASHBOARD_TARGETS = list(targets(load_dashboard()))


@pytest.mark.parametrize("panel, target", DASHBOARD_TARGETS, ids=[target_id(p, t) for p, t in DASHBOARD_TARGETS])
def test_dashboard_query_returns_data(stack: Stack, panel: dict[str, Any], target: dict[str, Any]) -> None:
    expr = substitute(target["expr"])
    result = query(stack, expr) if target.get("instant") else query_range(stack, expr)
    assert result["status"] == "success", f"Prometheus rejected {expr!r}: {result.get('error')}"
    assert result["data"]["result"], f"no series for {panel['title']!r}: {expr}"
    assert finite_values(result), f"only NaN/Inf for {panel['title']!r}: {expr}"


# ---------------------------------------------------------------- alert rules, for real
ALERTS = {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}

# For each alert, the signal it is computed from: each must have data after this test's traffic.
ALERT_SIGNALS = {
    "GatewayDown": ['up{job="gateway"}'],
    "UpstreamErrorRatioHigh": [
        "sum by (deployment) (rate(gateway_upstream_errors_total[5m])) / sum by (deployment) (rate(gateway_upstream_duration_seconds_count[5m]))"],
    "BreakerOpen": ["max by (deployment) (gateway_breaker_state)"],
    "LatencySLOBurn": [
        'histogram_quantile(0.95, sum by (le, deployment) (rate(gateway_request_duration_seconds_bucket{outcome="ok", deployment!="none"}[5m])))',
        "max(gateway_latency_slo_seconds)"],
    "BudgetNearlySpent": ["min by (team, period) (gateway_budget_remaining_usd) / max by (team, period) (gateway_budget_limit_usd > 0)"],
    "BudgetExhausted": ['sum by (team) (gateway_budget_denied_requests_total{action="deny"})'],
    "RedisDegraded": ["min by (job, instance) (gateway_redis_up)", "sum by (job, instance) (rate(gateway_redis_errors_total[5m]))"],
    "PolicyReloadFailed": ['gateway_policy_reloads_total{result="failure"}'],
}


def test_every_alert_has_its_signals_listed() -> None:
    assert set(ALERT_SIGNALS) == set(ALERTS)


def test_alert_rules_load_and_evaluate_without_errors(stack: Stack) -> None:
    groups = prom_get(stack.prom, "/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) == set(ALERTS)
    broken = {name: r.get("lastError") for name, r in rules.items() if r["health"] != "ok" or r.get("lastError")}
    assert not broken, broken


@pytest.mark.parametrize("alert", list(ALERTS))
def test_alert_expression_evaluates(stack: Stack, alert: str) -> None:
    result = query(stack, ALERTS[alert]["expr"])
    assert result["status"] == "success", result.get("error")


@pytest.mark.parametrize("alert, expr", [(a, e) for a, exprs in ALERT_SIGNALS.items() for e in exprs],
                         ids=[f"{a}-{i}" for a, exprs in ALERT_SIGNALS.items() for i, _ in enumerate(exprs)])
def test_alert_signal_has_data(stack: Stack, alert: str, expr: str) -> None:
    result = query(stack, expr)
    assert result["status"] == "success", result.get("error")
    assert finite_values(result), f"{alert}: no data for {expr}"


def _active(stack: Stack, alert: str) -> list[dict[str, Any]]:
    alerts = prom_get(stack.prom, "/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alert and a["state"] in ("pending", "firing")]


def _labels(active: list[dict[str, Any]], label: str) -> set[str]:
    return {a["labels"].get(label, "") for a in active}


def _signals(stack: Stack, alert: str) -> str:
    """What the alert's signals evaluated to, for the failure message."""
    lines = []
    for expr in ALERT_SIGNALS[alert]:
        rows = query(stack, expr)["data"]["result"]
        lines.append(f"  {expr}\n    = " + (", ".join(f"{r['metric']} {r['value'][1]}" for r in rows) or "(no data)"))
    return f"{alert} signals:\n" + "\n".join(lines)


def test_gateway_down_is_quiet(stack: Stack) -> None:
    assert _active(stack, "GatewayDown") == [], _signals(stack, "GatewayDown")


def test_policy_reload_failure_fires_at_once(stack: Stack) -> None:
    active = _active(stack, "PolicyReloadFailed")
    assert {(a["labels"]["instance"], a["state"]) for a in active} == {(stack.instance(stack.gateway_a), "firing")}, \
        _signals(stack, "PolicyReloadFailed")


def test_breaker_open_is_pending_for_the_broken_deployment(stack: Stack) -> None:
    assert _labels(_active(stack, "BreakerOpen"), "deployment") == {"broken-self"}, _signals(stack, "BreakerOpen")


def test_upstream_error_ratio_is_pending_for_the_flaky_deployment(stack: Stack) -> None:
    # broken-self fails every call but its breaker stops the calls before the 10-attempt floor
    assert "flaky-self" in _labels(_active(stack, "UpstreamErrorRatioHigh"), "deployment"), \
        _signals(stack, "UpstreamErrorRatioHigh")


def test_budget_nearly_spent_is_pending_for_the_tiny_budget_only(stack: Stack) -> None:
    active = _active(stack, "BudgetNearlySpent")
    assert {(a["labels"]["team"], a["labels"]["period"]) for a in active} == {("tiny", "day")}, \
        _signals(stack, "BudgetNearlySpent")


def test_budget_exhausted_fires_for_the_refused_team(stack: Stack) -> None:
    assert set(stack.traffic.statuses["tiny budget"]) == {200, 429}, "the tiny budget must be spent within the run"
    assert _labels(_active(stack, "BudgetExhausted"), "team") == {"tiny"}, _signals(stack, "BudgetExhausted")


def test_budget_gauge_shows_nothing_left_for_a_refused_team(stack: Stack) -> None:
    """While a team is refused for budget, the dashboard must not show budget left."""
    rows = query(stack, 'gateway_budget_remaining_usd{team="tiny", period="day"}')["data"]["result"]
    assert [float(r["value"][1]) for r in rows] == [0.0], \
        f"team tiny is refused (429) but gateway_budget_remaining_usd says {rows}"


def test_latency_slo_burn_is_pending_against_the_1ms_slo(stack: Stack) -> None:
    assert "qwen-self" in _labels(_active(stack, "LatencySLOBurn"), "deployment"), _signals(stack, "LatencySLOBurn")


def test_redis_degraded_only_for_the_gateway_without_redis(stack: Stack) -> None:
    assert _labels(_active(stack, "RedisDegraded"), "instance") == {stack.instance(stack.gateway_b)}, \
        _signals(stack, "RedisDegraded")


# ---------------------------------------------------------------- the README picture
def test_plot_from_prometheus(stack: Stack, tmp_path: Path) -> None:
    out = Path(os.environ.get("OBSERVABILITY_PLOT_TO") or tmp_path / "dashboard.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, str(PLOT), "--prometheus", stack.prom, "--out", str(out),
         "--start", f"{stack.started - 5:.0f}", "--end", f"{stack.at:.0f}", "--step", "1", "--window", "15s"],
        capture_output=True, text=True, timeout=120,
    )
    if "No module named 'matplotlib'" in proc.stderr:
        pytest.fail(f"matplotlib is not installed: {INSTALL_HINT}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
