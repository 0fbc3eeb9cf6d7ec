"""Saturated throughput with wrk: a closed loop of ``connections`` keep-alive connections sending as fast
as answers come back. A Lua script makes every body unique (so the gateway's cache lookups miss) and
prints wrk's summary as one JSON line."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.procs import taskset

_SCRIPT = """
local path = {path}
local head = {head}
local tail = {tail}
local headers = {headers}
local prefix = ""
local n = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = (args[1] or "run") .. "-" .. tostring(tid or 0) .. "-"
end

function request()
  n = n + 1
  return wrk.format("POST", path, headers, head .. prefix .. n .. tail)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def _lua_string(text: str) -> str:
    level = "=" * 4
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    errors: dict[str, int]
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict:
        return {"requests": self.requests, "duration_s": round(self.duration_s, 3), "rps": round(self.rps, 1),
                "errors": self.errors, "latency_p50_ms": self.p50_ms, "latency_p99_ms": self.p99_ms}


def write_script(path: Path, url_path: str, body_template: str, marker: str, headers: dict[str, str]) -> Path:
    head, _, tail = body_template.partition(marker)
    lua_headers = "{" + ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in headers.items()) + "}"
    path.write_text(_SCRIPT.format(path=_lua_string(url_path), head=_lua_string(head), tail=_lua_string(tail),
                                   headers=lua_headers))
    return path


def run(url: str, script: Path, duration: float, connections: int, threads: int, nonce: str,
        cpus: set[int] | None) -> WrkResult:
    """Requests that got a 2xx answer are counted; every other outcome goes in ``errors``."""
    argv = [*taskset(cpus), "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s",
            "--timeout", "30s", "-s", str(script), url, "--", nonce]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK-JSON ")), None)
    if line is None or out.stderr.strip():
        raise RuntimeError(f"wrk gave no summary (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("WRK-JSON "))
    errors = {k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    # wrk counts a non-2xx answer both as a request and as a `status` error.
    ok = data["requests"] - data["status"]
    return WrkResult(ok, data["duration_us"] / 1e6, errors, data["p50_us"] / 1000, data["p99_us"] / 1000)
