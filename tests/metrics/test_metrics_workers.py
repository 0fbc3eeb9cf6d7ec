"""With several workers, /metrics adds up every worker's counts (prometheus multiprocess mode)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests import servers
from tests.conftest import POLICIES

N = 120


def _total(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M))


def test_counts_add_up_across_workers(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "GATEWAY_ACCESS_LOG": "false"}
    with servers.gateway(POLICIES / "auth.yaml", env=env, extra=["--workers", "2"], log_path=tmp_path / "gw.log") as url:
        body = {"model": "auto", "messages": [{"role": "user", "content": "count me"}]}
        for _ in range(N):
            # A new connection each time, so the kernel spreads requests over both workers.
            with httpx.Client() as client:
                resp = client.post(f"{url}/v1/chat/completions", json=body,
                                   headers={"authorization": "Bearer sk-research-1", "connection": "close"})
                assert resp.status_code == 200
        text = httpx.get(f"{url}/metrics").text
        assert _total(text, "gateway_requests_total") == N
        assert _total(text, "gateway_request_duration_seconds_count") == N
        workers = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(workers) == 2, f"expected both workers to have counted, got files for {workers}"
        per_worker = [_worker_requests(metrics_dir, pid) for pid in workers]
        assert all(n > 0 for n in per_worker) and sum(per_worker) == N, per_worker


def _worker_requests(metrics_dir: Path, pid_suffix: str) -> float:
    from prometheus_client.mmap_dict import MmapedDict

    total = 0.0
    data = MmapedDict(str(metrics_dir / f"counter_{pid_suffix}"))
    try:
        for key, value, _ in data.read_all_values():
            if key.startswith('["gateway_requests_total"') or key.startswith('["gateway_requests"'):
                total += value
    finally:
        data.close()
    return total
