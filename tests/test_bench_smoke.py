"""The benchmark harness keeps working: ``bench/run.py --smoke`` against the nginx mock, the nginx proxy and
the gateway (minimal and everything on). LiteLLM is left out of smoke runs by the harness itself.

Needs nginx, wrk and redis-server (``bash bench/install-tools.sh``, which ``.ci/run`` calls). The harness
is given a free port for Redis, so it starts a redis-server of its own there (and stops it): the test
never touches a Redis it did not start. No timing is asserted: only that every system answered, the
figures are sane and the table, results.json and results.md are produced.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

from tests import servers

ROOT = Path(__file__).resolve().parent.parent
SMOKE_SYSTEMS = {"floor", "nginx-w1", "gateway-minimal-w1", "gateway-everything-w1"}


def _finite_positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_bench_smoke_produces_a_sane_table(tmp_path: Path) -> None:
    redis_url = f"redis://127.0.0.1:{servers.free_port()}/0"  # nothing answers there: the harness starts its own
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path),
                          "--redis-url", redis_url], cwd=ROOT, capture_output=True, text=True, timeout=600)
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
