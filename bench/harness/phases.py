"""The measurements of one system, always in this order:

1. idle RSS, after three single requests (so lazy initialisation is done) and a pause;
2. for plain, then streamed requests: a short unmeasured saturated warm-up, then the saturated run
   (wrk): requests/s, CPU time per request of the server's process tree, peak RSS of the tree;
3. open-loop latency of plain requests at each fixed rate, skipped (and marked) at rates the system
   could not sustain in step 2;
4. open-loop streamed requests at a low fixed rate (half the streamed capacity if that is lower):
   time to first token.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import bodies, procs, wrk
from harness.systems import Target

OPENLOOP = Path(__file__).resolve().parent / "openloop.py"


@dataclass
class PhaseConfig:
    run_dir: Path
    duration: float
    latency_duration: float
    rates: tuple[float, ...]
    ttft_rate: float
    connections: int
    wrk_threads: int
    warmup: float
    nonce: str
    load_cpus: set[int] | None
    idle_pause: float = 1.0


def _probe(target: Target, nonce: str) -> dict[str, str]:
    """One plain request; its response headers (to record what the system says it did)."""
    body = target.json_body.replace(bodies.NONCE, nonce).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{target.port}{target.json_path}", data=body,
                                 headers=target.headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()
        return {k.lower(): v for k, v in resp.headers.items()}


def settle(pids: Callable[[], list[int]], limit: float = 15.0) -> None:
    """Wait until the system is idle (under 5% of a core for 0.3 s): a load generator that stopped early
    can leave requests in flight whose work would otherwise be charged to the next measurement."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        before = procs.cpu_seconds(pids())
        time.sleep(0.3)
        if procs.cpu_seconds(pids()) - before < 0.015:
            return


def _saturated(pids: Callable[[], list[int]], server: procs.Server, target: Target, stream: bool,
               cfg: PhaseConfig, duration: float, tag: str, side_pids: list[int], connections: int) -> dict:
    path, body = (target.sse_path, target.sse_body) if stream else (target.json_path, target.json_body)
    script = wrk.write_script(cfg.run_dir / f"wrk-{'sse' if stream else 'json'}-{target.port}.lua", path, body,
                              bodies.NONCE, target.headers)
    settle(pids)
    before_pids = pids()
    cpu0, side0 = procs.cpu_seconds(before_pids), procs.cpu_seconds(side_pids)
    with procs.RssSampler(server) as rss:
        result = wrk.run(f"http://127.0.0.1:{target.port}{path}", script, duration, connections,
                         cfg.wrk_threads, f"{cfg.nonce}-{tag}", cfg.load_cpus)
    cpu = procs.cpu_seconds(set(before_pids) | set(pids())) - cpu0
    out = result.as_dict()
    out["connections"] = connections
    out["cpu_s"] = round(cpu, 3)
    out["cpu_ms_per_req"] = round(cpu * 1000 / result.requests, 4) if result.requests else None
    out["rss_peak_mb"] = round(rss.peak / 2**20, 1)
    if side_pids and result.requests:
        # Redis works for the gateway but is not in its process tree: reported apart.
        out["side_cpu_ms_per_req"] = round((procs.cpu_seconds(side_pids) - side0) * 1000 / result.requests, 4)
    return out


def _openloop(pids: Callable[[], list[int]], target: Target, stream: bool, rate: float, cfg: PhaseConfig,
              tag: str) -> dict:
    path, body = (target.sse_path, target.sse_body) if stream else (target.json_path, target.json_body)
    load = {
        "host": "127.0.0.1", "port": target.port, "path": path, "rate": rate, "duration": cfg.latency_duration,
        "body_template": body, "headers": target.headers, "nonce_marker": bodies.NONCE,
        "run_nonce": f"{cfg.nonce}-{tag}", "warmup_requests": 20, "prewarm_connections": 8, "timeout": 30.0,
    }
    settle(pids)
    cpu0 = procs.cpu_seconds(pids())
    out = subprocess.run([*procs.taskset(cfg.load_cpus), sys.executable, str(OPENLOOP), json.dumps(load)],
                         capture_output=True, text=True, timeout=cfg.latency_duration + 120)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"open-loop generator failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout)
    cpu = procs.cpu_seconds(pids()) - cpu0
    # The generator's warm-up requests are served inside the CPU window too.
    served = result["ok"] + load["warmup_requests"]
    result["cpu_ms_per_req"] = round(cpu * 1000 / served, 4) if served else None
    return result


def _connections(warm: dict | None, cfg: PhaseConfig) -> int:
    """Connections for a saturated run. wrk counts only the answers that complete inside the run, so the
    requests still in flight at its end are work done but not counted. For a slow system (tens of
    requests/s) 64 in-flight requests are a large share of a run; fewer connections still keep it busy
    and keep that share near 2%: at most ``connections``, at least 8 (enough to saturate any system that
    is CPU-bound), about 2% of the requests the warm-up rate predicts for the run."""
    if warm is None:
        return cfg.connections
    return max(8, min(cfg.connections, int(warm["rps"] * cfg.duration * 0.02)))


def _ttft_rate(sse_capacity: float, cfg: PhaseConfig) -> float:
    """The streamed open-loop rate: ``ttft_rate``, or half the system's streamed capacity if that is less
    (a saturated system has no time to first token worth the name)."""
    if sse_capacity >= cfg.ttft_rate * 1.1:
        return cfg.ttft_rate
    return max(1.0, round(sse_capacity / 2, 1))


def measure(server: procs.Server, target: Target, cfg: PhaseConfig, side_pids: Sequence[int] = ()) -> dict:
    """Every measurement of one running system (see the module docstring). ``side_pids``: helper processes
    outside the system's tree (Redis) whose CPU time per request is reported apart."""
    side_pids = list(side_pids)
    pids = server.pids
    headers = {}
    for i in range(3):
        headers = _probe(target, f"{cfg.nonce}-probe-{target.port}-{i}")
    time.sleep(cfg.idle_pause)
    result: dict = {"probe_headers": headers, "rss_idle_mb": round(procs.rss_bytes(pids()) / 2**20, 1),
                    "processes": len(pids())}
    for kind, stream in (("json", False), ("sse", True)):
        warm = None
        if cfg.warmup > 0:
            warm = _saturated(pids, server, target, stream, cfg, cfg.warmup, f"warm-{kind}-{target.port}", [],
                              cfg.connections)
            result[f"warmup_{kind}"] = warm
        result[f"saturated_{kind}"] = _saturated(pids, server, target, stream, cfg, cfg.duration,
                                                 f"s{kind}-{target.port}", side_pids, _connections(warm, cfg))
    result["rss_load_mb"] = max(result["saturated_json"]["rss_peak_mb"], result["saturated_sse"]["rss_peak_mb"])
    capacity = result["saturated_json"]["rps"]
    result["latency"] = {}
    for rate in cfg.rates:
        if capacity < rate * 1.1:
            result["latency"][str(int(rate))] = {"skipped": f"saturates at {capacity:.0f} rps < {rate * 1.1:.0f}"}
            continue
        result["latency"][str(int(rate))] = _openloop(pids, target, False, rate, cfg, f"ol{int(rate)}-{target.port}")
    rate = _ttft_rate(result["saturated_sse"]["rps"], cfg)
    result["ttft"] = _openloop(pids, target, True, rate, cfg, f"ttft-{target.port}")
    return result
