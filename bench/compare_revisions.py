"""Before/after in one run: the gateway at a baseline git revision and as it is in the working tree.

Run: ``.venv/bin/python bench/compare_revisions.py --baseline REV [--rounds 3] [--duration 8]``.
Writes ``bench/out/compare_revisions.json`` and prints a table.

The baseline's ``gateway`` package is exported (``git archive``) to a temporary folder and put first on
``PYTHONPATH`` of the benchmark's gateway processes; the working tree runs as installed. Rounds
alternate (baseline, current, baseline, current, ...) so that a busy moment of the shared machine hits
both; each round is one ``bench/run.py`` run of the gateway with the minimal policy and with everything
on (same nginx mock, same Redis started for the run). Figures: CPU time per request of the gateway's
process tree (``cpu_ms_per_req``) and saturated requests per second, plain JSON and streamed, median
over rounds. The CPU figure is the one to read on a shared machine; throughput moves with neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ("gateway-minimal", "gateway-everything")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def export(revision: str) -> Path:
    """The ``gateway`` package at ``revision``, in a fresh folder (for ``PYTHONPATH``)."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision, "gateway"],
                          check=True, capture_output=True).stdout
    folder = Path(tempfile.mkdtemp(prefix=f"gateway-{revision[:10]}-"))
    with tarfile.open(fileobj=BytesIO(data)) as archive:
        archive.extractall(folder, filter="data")
    return folder


def one_run(label: str, pythonpath: Path | None, args: argparse.Namespace, redis_url: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--systems", ",".join(SYSTEMS), "--workers", "1",
           "--duration", str(args.duration), "--warmup", "2", "--latency-duration", "3", "--rates", "25",
           "--redis-url", redis_url, "--out", str(out), "--no-chart"]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    doc = json.loads((out / "results.json").read_text())
    figures = {}
    for system in doc["systems"].values():
        if system.get("kind") not in SYSTEMS or "error" in system:
            continue
        for kind in ("json", "sse"):
            phase = system[f"saturated_{kind}"]
            figures[f"{system['kind']}/{kind}"] = {"cpu_ms_per_req": phase["cpu_ms_per_req"], "rps": phase["rps"],
                                                   "failed": phase.get("failed", 0)}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare the working tree against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()
    baseline = export(args.baseline)
    # A Redis of the run's own on a free loopback port (the harness starts it), never a shared one.
    redis_url = f"redis://127.0.0.1:{_free_port()}/0"
    runs: dict[str, list[dict]] = {"baseline": [], "current": []}
    for i in range(args.rounds):
        for label, path in (("baseline", baseline), ("current", None)):
            print(f"compare: round {i + 1}/{args.rounds}: {label}", file=sys.stderr, flush=True)
            runs[label].append(one_run(label, path, args, redis_url))
    table: dict[str, dict[str, float]] = {}
    for key in runs["current"][0]:
        row = {}
        for label in runs:
            row[f"{label}_cpu_ms"] = statistics.median(r[key]["cpu_ms_per_req"] for r in runs[label])
            row[f"{label}_rps"] = statistics.median(r[key]["rps"] for r in runs[label])
        row["cpu_ratio"] = row["current_cpu_ms"] / row["baseline_cpu_ms"]
        row["rps_ratio"] = row["current_rps"] / row["baseline_rps"]
        table[key] = row
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare_revisions.json").write_text(json.dumps(
        {"baseline": args.baseline, "rounds": args.rounds, "duration": args.duration, "table": table, "runs": runs},
        indent=2))
    print(f"{'system/answer':28} {'CPU ms/req before':>18} {'after':>8} {'ratio':>7} {'req/s before':>13} "
          f"{'after':>8} {'ratio':>7}")
    for key, row in table.items():
        print(f"{key:28} {row['baseline_cpu_ms']:>18.3f} {row['current_cpu_ms']:>8.3f} {row['cpu_ratio']:>7.2f} "
              f"{row['baseline_rps']:>13.0f} {row['current_rps']:>8.0f} {row['rps_ratio']:>7.2f}")


if __name__ == "__main__":
    main()
