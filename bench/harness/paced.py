"""The paced-stream phase: streams at a model's pace, the relay's cost per event.

    paced client (N open streams) ──► system under test ──► paced upstream (one event per write, stamped)

The standard phase's streams arrive from nginx in one read, which hides what a relay pays per event.
Here every token is its own write at the upstream, ``1/tps`` apart, as from a model server generating
token by token; ``paced_upstream`` stamps each with the moment it left and ``paced_client`` compares it
with the moment it arrived. For each system (one worker) and each (streams, tokens/s) of the plan:

1. idle RSS after three short streams and a pause;
2. one run: N streams kept open for the ramp (one stream's length, over which the slots start) plus
   the measured window; CPU time of the system's process tree over the whole run divided by the
   events the client received (**CPU per event**) and by the streams completed; the tree's peak RSS
   minus the idle RSS, per open stream; added TTFT, added inter-token latency and transit from the
   client; the load side's own CPU and the upstream's timer lag, to show it kept up;
3. a system whose CPU was busy ≥ 90% of its core in the measured window is *saturated*: larger plans
   are skipped.

The **open-streams check** runs apart, on a freshly started system: ``open_streams`` streams at a low
pace (idle-ish), all open at once (the upstream counts them), with the open-files limit and the
server's connection cap raised as a deployment would; it must end without errors and gives the
memory per open stream.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from harness import bodies, procs
from harness.phases import settle
from harness.systems import Target

HERE = Path(__file__).resolve().parent
BUSY = 0.9
"""A system busy this share of its core during a run is saturated (its reads coalesce, its latency
grows with the queue): larger plans are not attempted."""


@dataclass
class PacedConfig:
    run_dir: Path
    plan: tuple[tuple[int, float], ...]
    """(concurrent streams, tokens per second per stream), in the order measured."""
    tokens: int
    window: float
    """Seconds measured after the ramp (the ramp itself is one stream's length)."""
    ttft_ms: float
    nonce: str
    load_cpus: set[int] | None
    open_streams: int = 10_000
    open_tps: float = 0.2
    open_tokens: int = 8
    """At 0.2 tokens/s a stream lasts 40 s: longer than the ramp and the hold, so all are open at once."""
    open_ramp: float = 30.0
    open_hold: float = 5.0
    idle_pause: float = 1.0


class PacedUpstream:
    """``paced_upstream.py`` as a server the harness started, with its control calls."""

    def __init__(self, run_dir: Path, port: int, cpus: set[int] | None, open_files: int | None) -> None:
        self.port = port
        self.server = procs.Server("paced-upstream", [*procs.taskset(cpus), sys.executable, str(HERE / "paced_upstream.py"),
                                                      str(port)], run_dir / "paced-upstream.log", open_files=open_files)
        self.server.wait_ready(f"http://127.0.0.1:{port}/healthz", timeout=20)

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data),
                                    timeout=10) as resp:
            return json.loads(resp.read())

    def pace(self, tokens: int, tps: float, ttft_ms: float) -> None:
        self._call("/pace", {"tokens": tokens, "tps": tps, "ttft_ms": ttft_ms})

    def stats(self, reset: bool = False) -> dict:
        return self._call("/stats?reset=1" if reset else "/stats")

    def stop(self) -> None:
        self.server.stop()


def _client(target: Target, streams: int, duration: float, ramp: float, stream_timeout: float,
            cfg: PacedConfig, tag: str) -> dict:
    load = {"host": "127.0.0.1", "port": target.port, "path": target.sse_path, "body_template": target.sse_body,
            "headers": target.headers, "nonce_marker": bodies.NONCE, "run_nonce": f"{cfg.nonce}-{tag}",
            "streams": streams, "duration": duration, "ramp": ramp, "stream_timeout": stream_timeout}
    out = subprocess.run([*procs.taskset(cfg.load_cpus), sys.executable, str(HERE / "paced_client.py"), json.dumps(load)],
                         capture_output=True, text=True, timeout=duration + 2 * stream_timeout + 120)
    if out.returncode != 0 or not out.stdout.strip():
        raise RuntimeError(f"paced client failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def _idle_rss(server: procs.Server, target: Target, upstream: PacedUpstream, cfg: PacedConfig) -> float:
    """RSS after three short streams (lazy initialisation done) and a pause, in MB."""
    upstream.pace(5, 200.0, 0.0)
    probe = _client(target, 3, 0.01, 0.0, 30.0, cfg, f"probe-{target.port}")
    if probe["ok"] != 3:
        raise RuntimeError(f"probe streams failed: {probe['errors']}")
    time.sleep(cfg.idle_pause)
    return procs.rss_bytes(server.pids()) / 2**20


def _run(server: procs.Server, target: Target, upstream: PacedUpstream, streams: int, tps: float, tokens: int,
         window: float, ramp: float, cfg: PacedConfig, tag: str, rss_idle_mb: float, load_pids: list[int],
         side_pids: list[int]) -> dict:
    """One run of ``streams`` open streams; the figures of the module docstring."""
    upstream.pace(tokens, tps, cfg.ttft_ms)
    stream_s = tokens / tps + cfg.ttft_ms / 1000
    settle(server.pids)
    upstream.stats(reset=True)
    pids = server.pids()
    cpu0, load0, side0 = procs.cpu_seconds(pids), procs.cpu_seconds(load_pids), procs.cpu_seconds(side_pids)
    sys0 = procs.system_seconds(pids)
    steady = _SteadyCpu(server, ramp, window)
    with procs.RssSampler(server) as rss, steady:
        result = _client(target, streams, ramp + window, ramp, 4 * stream_s + 60, cfg, tag)
    cpu = procs.cpu_seconds(set(pids) | set(server.pids())) - cpu0
    kernel = procs.system_seconds(set(pids) | set(server.pids())) - sys0
    up = upstream.stats()
    events, elapsed = result["events"], result["elapsed_s"]
    result.update({
        "tps": tps, "tokens": tokens, "offered_events_per_s": round(streams * tps * (tokens + 4) / tokens),
        "cpu_s": round(cpu, 3), "cpu_share": steady.share, "kernel_share": round(kernel / cpu, 3) if cpu else None,
        "cpu_us_per_event": round(cpu * 1e6 / events, 2) if events else None,
        "cpu_ms_per_stream": round(cpu * 1e3 / result["ok"], 3) if result["ok"] else None,
        "rss_peak_mb": round(rss.peak / 2**20, 1),
        "rss_kb_per_stream": round(max(0.0, rss.peak / 2**20 - rss_idle_mb) * 1024 / streams, 1),
        "upstream": up,
        # The load side (client and upstream) shares its core(s): its busy share says whether it kept up.
        "load_cpu_share": round((procs.cpu_seconds(load_pids) - load0 + result["client_cpu_s"]) / elapsed, 3)
        if elapsed else None,
    })
    if side_pids and events:
        result["side_cpu_us_per_event"] = round((procs.cpu_seconds(side_pids) - side0) * 1e6 / events, 2)
    result["saturated"] = bool(result["cpu_share"] and result["cpu_share"] >= BUSY)
    return result


class _SteadyCpu:
    """The system's busy share of a core in the measured window (after the ramp, all N streams open): the
    saturation test. Over the whole run the share would be diluted by the ramp and the tail."""

    def __init__(self, server: procs.Server, ramp: float, window: float) -> None:
        self._server, self._ramp, self._window = server, ramp, window
        self.share: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self._stop.wait(self._ramp):
            return
        began, cpu0 = time.monotonic(), procs.cpu_seconds(self._server.pids())
        if self._stop.wait(self._window):
            return
        self.share = round((procs.cpu_seconds(self._server.pids()) - cpu0) / (time.monotonic() - began), 3)

    def __enter__(self) -> _SteadyCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(server: procs.Server, target: Target, upstream: PacedUpstream, cfg: PacedConfig, *,
            floor: bool = False, side_pids: list[int] | None = None) -> dict:
    """Every run of the plan for one running system (for the floor, ``server`` is the upstream itself)."""
    load_pids = [] if floor else upstream.server.pids()
    rss_idle = _idle_rss(server, target, upstream, cfg)
    out: dict = {"rss_idle_mb": round(rss_idle, 1), "runs": {}}
    saturated_at = None
    for streams, tps in cfg.plan:
        key = f"{streams}@{tps:g}"
        if saturated_at is not None:
            out["runs"][key] = {"skipped": f"saturated at {saturated_at}", "streams": streams, "tps": tps}
            continue
        ramp = cfg.tokens / tps + cfg.ttft_ms / 1000
        run = _run(server, target, upstream, streams, tps, cfg.tokens, cfg.window, ramp, cfg,
                   f"paced{streams}-{target.port}", rss_idle, load_pids, side_pids or [])
        out["runs"][key] = run
        if run["saturated"] and not floor:
            saturated_at = key
    return out


def open_check(server: procs.Server, target: Target, upstream: PacedUpstream, cfg: PacedConfig) -> dict:
    """``open_streams`` idle-ish streams open at once on a fresh system (see the module docstring)."""
    rss_idle = _idle_rss(server, target, upstream, cfg)
    run = _run(server, target, upstream, cfg.open_streams, cfg.open_tps, cfg.open_tokens, cfg.open_hold,
               cfg.open_ramp, cfg, f"open-{target.port}", rss_idle, upstream.server.pids(), [])
    run["rss_idle_mb"] = round(rss_idle, 1)
    return run
