"""`gateway policy simulate`: recorded traffic replayed through a candidate policy, no upstream called.

The figures are checked against costs computed here by hand from the recorded token counts and the
policies' prices: on an access log recorded from a real gateway run, and on a file of request bodies.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from gateway.core.types import Endpoint
from gateway.routing.replay import measured_stats, replay
from gateway.routing.tokens import estimate_request_tokens
from gateway.routing.traffic import Recorded, TrafficRecord, read_traffic
from tests import servers
from tests.conftest import POLICIES

CURRENT = POLICIES / "replay.yaml"
PRICES = {"self": (0.2, 0.4), "vendor": (2.5, 10.0), "cheap-vendor": (0.15, 0.6)}
KEYS = {"support": "sk-replay-support", "eng": "sk-replay-eng"}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
# The change under review: support moves to the self-hosted deployment; eng may no longer stream.
CANDIDATE_RULES = """
rules:
  - name: support-self-hosted
    when: {team: [support]}
    require: {hosting: self}
  - name: eng-no-streams
    when: {team: [eng], stream: true}
    deny: eng batch jobs must not stream
"""


def cost(deployment: str, prompt: int, completion: int) -> float:
    price_in, price_out = PRICES[deployment]
    return (prompt * price_in + completion * price_out) / 1_000_000


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "policy", "simulate", *args], capture_output=True,
                          text=True, cwd=servers.ROOT, timeout=120)


@pytest.fixture(scope="module")
def recorded_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The access log of a real gateway run: the openai SDK against the gateway on loopback."""
    folder = tmp_path_factory.mktemp("replay")
    log = folder / "gateway.log"
    with servers.gateway(CURRENT, env={"GATEWAY_ACCESS_LOG": "true"}, log_path=log) as url:
        support = openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["support"], max_retries=0)
        eng = openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS["eng"], max_retries=0)
        for text in ("Where is my parcel?", "Reset my password please", "Cancel order 12345"):
            support.chat.completions.create(model="chat", messages=[{"role": "user", "content": text}])
        support.chat.completions.create(model="chat", messages=[{"role": "user", "content": [
            {"type": "text", "text": "What does this screenshot show?"}, IMAGE]}])
        eng.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Explain the build failure"}])
        for _ in eng.chat.completions.create(model="chat", stream=True, messages=[{"role": "user", "content": "Stream it"}]):
            pass
        # Refused before routing: no request facts, so nothing to replay.
        assert httpx.post(f"{url}/v1/chat/completions", json={"model": "chat", "messages": []},
                          headers={"authorization": f"Bearer {KEYS['eng']}"}).status_code == 400
        assert httpx.post(f"{url}/v1/chat/completions", json={"model": "chat"}).status_code == 401
        time.sleep(0.3)  # the access log is written behind the responses
    return log


def candidate_file(tmp_path: Path) -> Path:
    path = tmp_path / "candidate.yaml"
    path.write_text(CURRENT.read_text().replace("name: replay-current", "name: replay-candidate") + CANDIDATE_RULES)
    return path


def log_entries(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"ts":')]


def test_the_access_log_records_the_facts_routing_needs_and_never_prompt_text(recorded_log: Path) -> None:
    entries = log_entries(recorded_log)
    routed = [e for e in entries if e["status"] == 200]
    assert len(routed) == 6
    for entry in routed:
        for field in ("endpoint", "model", "team", "key", "data_class", "detected", "prompt_tokens_est",
                      "features", "stream", "max_output_tokens"):
            assert field in entry, field
    image = next(e for e in routed if "vision" in e["features"])
    assert image["team"] == "support" and image["key"] == "support-bot"
    text = recorded_log.read_text()
    for prompt in ("Where is my parcel", "Reset my password", "screenshot", "build failure"):
        assert prompt not in text


def test_replay_of_a_real_access_log_matches_hand_computed_costs(recorded_log: Path, tmp_path: Path) -> None:
    run = simulate(str(candidate_file(tmp_path)), "--traffic", str(recorded_log), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    routed = [e for e in log_entries(recorded_log) if e["status"] == 200]
    assert all(e["deployment"] == "vendor" for e in routed)  # today everything goes to the vendor
    # By hand: support → self (the image has no route: self cannot see); eng plain → vendor; eng stream → denied.
    served = {"support": "self", "eng": "vendor"}
    expected_projected = expected_recorded = expected_baseline = 0.0
    for e in routed:
        unserved = "vision" in e["features"] or (e["team"] == "eng" and e["stream"])
        if unserved:
            continue
        p, c = e["prompt_tokens"], e["completion_tokens"]
        expected_recorded += cost("vendor", p, c)
        expected_projected += cost(served[e["team"]], p, c)
        expected_baseline += cost("vendor", p, c)
    assert report["requests"] == 6
    assert report["changed_routes"] == 3 + 1 + 1  # three to self, the image to no route, the stream to denied
    assert report["no_route"] == 1 and report["denied"] == 1 and report["served"] == 4
    assert report["recorded_cost_usd"] == pytest.approx(expected_recorded, abs=1e-8)
    assert report["projected_cost_usd"] == pytest.approx(expected_projected, abs=1e-8)
    assert report["baseline_cost_usd"] == pytest.approx(expected_baseline, abs=1e-8)
    assert report["savings_ratio"] == pytest.approx(1 - expected_projected / expected_baseline, abs=1e-4)
    unserved_recorded = sum(e["cost_usd"] for e in routed) - expected_recorded
    assert report["unserved_recorded_cost_usd"] == pytest.approx(unserved_recorded, abs=1e-8)
    assert report["by_team"]["support"]["changed_routes"] == 4 and report["by_team"]["eng"]["denied"] == 1
    assert report["by_rule"]["support-self-hosted"]["requests"] == 4
    assert {r["from"] + ">" + r["to"]: r["requests"] for r in report["routes"]} == {
        "vendor>self": 3, "vendor>no route": 1, "vendor>denied": 1, "vendor>vendor": 1}
    # The gateway's log file also holds its start-up lines: skipped as such. The 400 and the 401 carry no facts.
    refused = [s["reason"] for s in report["skipped"] if s["reason"] != "not a JSON line"]
    assert refused == ["no request facts: refused before routing (status 400)",
                       "no request facts: refused before routing (status 401)"]
    (why,) = report["what_breaks"]["no_route"]
    assert "self: capability_missing (no vision)" in why


def test_the_recorded_cost_is_what_the_gateway_charged(recorded_log: Path) -> None:
    """Replaying the current policy against its own log changes nothing and costs what was recorded."""
    run = simulate(str(CURRENT), "--traffic", str(recorded_log), "--json")
    report = json.loads(run.stdout)
    charged = sum(e.get("cost_usd", 0) for e in log_entries(recorded_log))
    assert report["changed_routes"] == 0 and report["denied"] == report["no_route"] == 0
    assert report["recorded_cost_usd"] == pytest.approx(charged, abs=1e-7)
    assert report["projected_cost_usd"] == pytest.approx(charged, abs=1e-7)


def test_the_text_report_says_what_breaks(recorded_log: Path, tmp_path: Path) -> None:
    run = simulate(str(candidate_file(tmp_path)), "--traffic", str(recorded_log))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("Replayed 6 requests from")
    assert re.search(r"vendor → self +3   changed", out), out
    assert "no route: 1 request" in out and "denied: 1 request" in out
    assert "rule eng-no-streams: eng batch jobs must not stream" in out


def test_request_bodies_with_a_baseline(tmp_path: Path) -> None:
    bodies = [
        {"model": "chat", "max_tokens": 50, "messages": [{"role": "user", "content": "Hello there, how are you today?"}]},
        {"team": "support", "request": {"model": "chat", "max_tokens": 80,
                                        "messages": [{"role": "user", "content": "My invoice is wrong."}]}},
        {"key": "support-bot", "request": {"model": "chat", "max_tokens": 20, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "see image"}, IMAGE]}]}},
        {"team": "eng", "request": {"model": "chat", "max_tokens": 30, "stream": True,
                                    "messages": [{"role": "user", "content": "Run the migration."}]}},
    ]
    traffic = tmp_path / "bodies.jsonl"
    traffic.write_text("\n".join(json.dumps(b) for b in bodies) + "\nnot json\n" + json.dumps({"model": "chat"}) + "\n")
    run = simulate(str(candidate_file(tmp_path)), "--traffic", str(traffic), "--baseline", str(CURRENT), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    tokens = [estimate_request_tokens(b.get("request", b), Endpoint.CHAT) for b in bodies]
    # By hand. Baseline (today): all four to the vendor. Candidate: default team → vendor; support → self;
    # support with an image → no route; eng stream → denied.
    assert report["requests"] == 4 and report["served"] == 2
    assert report["changed_routes"] == 3 and report["no_route"] == 1 and report["denied"] == 1
    assert report["recorded_cost_usd"] is None  # nothing was recorded: these are bodies
    assert report["current_cost_usd"] == pytest.approx(cost("vendor", tokens[0], 50) + cost("vendor", tokens[1], 80))
    assert report["projected_cost_usd"] == pytest.approx(cost("vendor", tokens[0], 50) + cost("self", tokens[1], 80))
    assert report["baseline_cost_usd"] == pytest.approx(cost("vendor", tokens[0], 50) + cost("vendor", tokens[1], 80))
    assert report["unserved_current_cost_usd"] == pytest.approx(cost("vendor", tokens[2], 20) + cost("vendor", tokens[3], 30))
    assert {s["line"]: s["reason"] for s in report["skipped"]} == {
        5: "not a JSON line",
        6: "the gateway would refuse this body (400): Missing required parameter: 'messages'.",
    }


def test_latency_slo_projection_uses_recorded_speeds() -> None:
    def ok(dep: str, ttft: float | None, duration: float, tokens: int, upstream: float = 0.0) -> TrafficRecord:
        return TrafficRecord(1, recorded=Recorded("ok", dep, completion_tokens=tokens, ttft_ms=ttft,
                                                  duration_ms=duration, upstream_ms=upstream))

    stats = measured_stats([ok("a", 100, 1100, 50), ok("a", 300, 1300, 100), ok("a", 200, 2200, 100),
                            ok("b", None, 999, 10, upstream=1000)])
    # a: TTFT median 200 ms; speeds 50, 100, 50 tokens/s → median 50. b: no stream, so no TTFT to split by.
    assert stats["a"].ttft_ms == 200 and stats["a"].tokens_per_second == 50
    assert "b" not in stats

    from gateway.policy.loader import parse_policy

    policy = parse_policy("""
deployments:
  a: {type: simulator, model: a, hosting: self, latency_prior: {ttft_ms: 10, tokens_per_second: 1000}}
models: {m: {deployments: [a]}}
rules: [{name: fast, when: {}, latency_slo_ms: 3000}]
""").policy
    lines = [json.dumps({"ts": 0, "request_id": str(i), "outcome": "ok", "status": 200, "endpoint": "chat", "model": "m",
                         "team": "default", "data_class": "internal", "prompt_tokens_est": 10, "max_output_tokens": n,
                         "deployment": "a", "completion_tokens": n, "ttft_ms": 200, "duration_ms": 200 + n * 20})
             for i, n in enumerate((100, 140, 150))]
    report = replay(read_traffic(lines), policy, candidate_name="t")
    # Expected: 200 ms + n / 50 tok/s → 2200, 3000, 3200 ms against a 3000 ms SLO: one miss.
    assert report.total.slo_requests == 3 and report.total.slo_misses == 1
    assert report.to_dict()["what_breaks"]["slo_misses"] == {
        "m (team default) on a, SLO 3000 ms": {"requests": 1, "expected_ms_p50": 3200.0, "expected_ms_max": 3200.0}}


@pytest.mark.parametrize("args, message", [
    (["--traffic", "/nonexistent.jsonl"], "cannot read /nonexistent.jsonl"),
    (["--traffic", "EMPTY"], "holds no request to replay (it is empty)"),
])
def test_input_mistakes_are_messages_not_tracebacks(args: list[str], message: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    run = simulate(str(CURRENT), *[str(empty) if a == "EMPTY" else a for a in args])
    assert run.returncode == 1 and message in run.stderr and "Traceback" not in run.stderr


def test_a_broken_candidate_is_reported_like_check_does(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(CURRENT.read_text() + "rules: [{name: r, when: {team: [suport]}, deny: x}]\n")
    run = simulate(str(broken), "--traffic", str(broken))
    assert run.returncode == 1 and "unknown team 'suport' (did you mean 'support'?)" in run.stdout


def test_the_readme_example_shows_what_the_command_prints() -> None:
    """The worked example in the README is this command's output on the shipped sample."""
    run = simulate("bench/traffic/support-on-qwen.yaml", "--traffic", "bench/traffic/support-access-log.jsonl")
    assert run.returncode == 0, run.stderr
    readme = (servers.ROOT / "README.md").read_text()
    for line in run.stdout.splitlines():
        if line.startswith(("total", "support ", "  no route:", "  latency SLO")):
            assert line.rstrip() in readme, f"README is out of date: {line!r}"
