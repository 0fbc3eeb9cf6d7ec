"""What the run ran on: the machine, the versions of every system and tool, and the CPU layout."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from harness import nginx

ROOT = Path(__file__).resolve().parent.parent.parent


def _cmd(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip()


def describe() -> dict:
    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    except OSError:
        pass
    mem_kb = 0
    try:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    os_name = ""
    try:
        os_name = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text()).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": sorted(os.sched_getaffinity(0)),
            "memory_gib": round(mem_kb / 2**20, 1), "kernel": platform.release(), "os": os_name,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def versions() -> dict:
    from importlib import metadata

    commit = _cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    wrk = _cmd(["wrk", "--version"]).splitlines()
    return {
        "python": sys.version.split()[0],
        "gateway": f"{metadata.version('gateway')} ({commit}{', modified' if dirty else ''})",
        "nginx": nginx.version(),
        "wrk": wrk[0].split()[1] if wrk and len(wrk[0].split()) > 1 else "unknown",
        "uvicorn": metadata.version("uvicorn"),
    }


def cpu_layout(workers: int, pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(system-under-test CPUs, load-side CPUs). With fewer workers than cores, the system gets the first
    ``workers`` cores and the load side (load generator, mock, Redis the harness started) the others;
    otherwise nothing is pinned and the scheduler shares every core."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or workers >= len(cores):
        return None, None
    return set(cores[:workers]), set(cores[workers:])
