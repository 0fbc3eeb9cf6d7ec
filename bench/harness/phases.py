"""The measurements of one system, always in this order:

1. idle RSS, after three single requests (so lazy initialisation is done) and a pause;
2. warm-up: a short unmeasured saturated run of each kind;
3. saturated throughput, plain then streamed (wrk): requests/s, CPU time per request of the server's
   process tree, peak RSS of the tree;
4. open-loop latency of plain requests at each fixed rate, skipped (and marked) at rates the system
   could not sustain in step 3;
5. open-loop streamed requests at a low fixed rate: time to first token.
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


def _saturated(pids: Callable[[], list[int]], server: procs.Server, target: Target, stream: bool,
               cfg: PhaseConfig, duration: float, tag: str, side_pids: list[int]) -> dict:
    path, body = (target.sse_path, target.sse_body) if stream else (target.json_path, target.json_body)
    script = wrk.write_script(cfg.run_dir / f"wrk-{'sse' if stream else 'json'}-{target.port}.lua", path, body,
                              bodies.NONCE, target.headers)
    before_pids = pids()
    cpu0, side0 = procs.cpu_seconds(before_pids), procs.cpu_seconds(side_pids)
    with procs.RssSampler(server) as rss:
        result = wrk.run(f"http://127.0.0.1:{target.port}{path}", script, duration, cfg.connections,
                         cfg.wrk_threads, f"{cfg.nonce}-{tag}", cfg.load_cpus)
    cpu = procs.cpu_seconds(set(before_pids) | set(pids())) - cpu0
    out = result.as_dict()
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
    for stream in (False, True) if cfg.warmup > 0 else ():
        _saturated(pids, server, target, stream, cfg, cfg.warmup, f"warm-{target.port}", [])
    result["saturated_json"] = _saturated(pids, server, target, False, cfg, cfg.duration, f"sj-{target.port}",
                                          side_pids)
    result["saturated_sse"] = _saturated(pids, server, target, True, cfg, cfg.duration, f"ss-{target.port}",
                                         side_pids)
    result["rss_load_mb"] = max(result["saturated_json"]["rss_peak_mb"], result["saturated_sse"]["rss_peak_mb"])
    capacity = result["saturated_json"]["rps"]
    result["latency"] = {}
    for rate in cfg.rates:
        if capacity < rate * 1.1:
            result["latency"][str(int(rate))] = {"skipped": f"saturates at {capacity:.0f} rps < {rate * 1.1:.0f}"}
            continue
        result["latency"][str(int(rate))] = _openloop(pids, target, False, rate, cfg, f"ol{int(rate)}-{target.port}")
    if result["saturated_sse"]["rps"] < cfg.ttft_rate * 1.1:
        result["ttft"] = {"skipped": f"saturates at {result['saturated_sse']['rps']:.0f} rps"}
    else:
        result["ttft"] = _openloop(pids, target, True, cfg.ttft_rate, cfg, f"ttft-{target.port}")
    return result
