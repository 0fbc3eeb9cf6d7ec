"""The benchmark harness keeps working: ``bench/run.py --smoke`` against the nginx mock, the nginx proxy and
the gateway (minimal and everything on), for the standard phase and for the paced-stream phase with the
open-streams check. LiteLLM is left out of smoke runs by the harness itself.

Needs nginx, wrk and redis-server (``bash bench/install-tools.sh``, which ``.ci/run`` calls; the harness
starts its own Redis). No timing is asserted: only that every system answered, the figures are sane
and the table, results.json and results.md are produced.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMOKE_SYSTEMS = {"floor", "nginx-w1", "gateway-minimal-w1", "gateway-everything-w1"}


def _finite_positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def _smoke(tmp_path: Path, phases: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--phases", phases,
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_bench_smoke_produces_a_sane_table(tmp_path: Path) -> None:
    run = _smoke(tmp_path, "standard")
    assert run.returncode == 0, f"exit {run.returncode}\nstdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"

    for heading in ("Throughput, CPU and memory:", "Added latency:", "Targets:"):
        assert heading in run.stdout
    doc = json.loads((tmp_path / "results.json").read_text())
    assert set(doc["systems"]) == SMOKE_SYSTEMS  # LiteLLM skipped by design in smoke mode
    assert doc["meta"]["smoke"] is True

    for key, res in doc["systems"].items():
        assert "error" not in res, f"{key}: {res.get('error')}"
        assert res["label"] in run.stdout
        d = doc["derived"][key]
        assert d["failed"] == 0, f"{key}: {d['failed']} requests without a 2xx answer"
        for figure in ("json_rps", "sse_rps", "cpu_ms_json", "cpu_ms_sse", "rss_idle_mb", "rss_load_mb"):
            assert _finite_positive(d[figure]), f"{key}: {figure} = {d[figure]!r}"
        assert d["rss_load_mb"] < 4096
        low = res["latency"]["25"]
        assert low["ok"] == low["sent"] > 0
        assert 0 < low["latency_ms"]["p50"] <= low["latency_ms"]["p99"]
        ttft = res["ttft"]
        assert ttft["ok"] == ttft["sent"] > 0
        # The first event cannot come after the whole stream.
        assert 0 < ttft["ttft_ms"]["p50"] <= ttft["latency_ms"]["p50"]
        if key != "floor":
            assert d["json_vs_floor"] is not None and d["added_p50_25"] is not None

    gateway = doc["systems"]["gateway-everything-w1"]["probe_headers"]
    assert gateway.get("x-gateway-rule") == "support-price-cap"  # the key, team and rules were in play
    assert [t["target"] for t in doc["targets"]]
    assert (tmp_path / "results.md").read_text().startswith("# Benchmark results")
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "chart.png").stat().st_size > 10_000


def test_bench_smoke_paced_streams_measure_every_event(tmp_path: Path) -> None:
    run = _smoke(tmp_path, "paced,open")
    assert run.returncode == 0, f"exit {run.returncode}\nstdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"

    for heading in ("Paced streams: relay cost per event:", "Paced streams: the load side kept up:",
                    "Open streams on one worker:", "Paced targets:"):
        assert heading in run.stdout
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["systems"] == {}  # the standard phase was not asked for
    paced = doc["paced"]
    assert set(paced["systems"]) == SMOKE_SYSTEMS | {"pypipe-w1"}
    tokens = paced["config"]["tokens"]
    for key, res in paced["systems"].items():
        assert "error" not in res, f"{key}: {res.get('error')}\n{res.get('log_tail')}"
        assert list(res["runs"]) == paced["config"]["plan"]
        for plan, r in res["runs"].items():
            where = f"{key} {plan}"
            assert r["failed"] == 0 and r["ok"] > 0, f"{where}: {r['errors']}"
            # Every stream: role, the tokens, finish, usage, [DONE]; each token stamped and timed.
            assert r["events"] == r["ok"] * (tokens + 4), where
            assert r["upstream"]["events"] >= r["events"] and r["upstream"]["aborted"] == 0, where
            assert r["events_per_read"] >= 1.0
            for figure in ("cpu_us_per_event", "cpu_ms_per_stream"):
                assert _finite_positive(r[figure]), f"{where}: {figure} = {r[figure]!r}"
            # One clock for upstream and client: nothing arrives before it left, and no token comes first.
            assert r["transit_us"]["n"] > 0 and r["transit_us"]["min"] >= 0, where
            # The upstream waits its time to first token on uvloop's clock (1 ms steps).
            assert r["ttft_added_ms"]["min"] >= 0 and r["ttft_ms"]["min"] >= paced["config"]["ttft_ms"] - 2, where
            itl = r["added_itl_us"]
            assert itl["n"] > 0 and itl["p50"] <= itl["p99"] <= itl["max"], where
            assert 0 <= r["rss_kb_per_stream"] < 10_000, where
        d = paced["derived"][key]
        assert all(not row.get("skipped") for row in d.values()), f"{key}: a plan was skipped in a smoke run"

    check = paced["open"]["gateway-everything-w1"]
    assert "error" not in check, check.get("error")
    assert check["failed"] == 0 and check["ok"] >= check["streams"]
    assert check["upstream"]["max_open"] == check["streams"]  # all open at once
    assert check["open_files_limit"] >= 2 * check["streams"]
    assert [t["target"] for t in paced["targets"]]
    assert "## Paced streams: relay cost per event" in (tmp_path / "results.md").read_text()
