"""Real servers on loopback for end-to-end tests: the gateway and the simulator as subprocesses."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None,
              log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = log_path.read_text(errors="replace") if log_path else ""
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}:\n{out[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 500:
                    return
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s: {last}")


@contextlib.contextmanager
def running(args: list[str], health_url: str, env: dict[str, str] | None = None,
            log_path: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run ``python -m gateway ARGS`` until the block ends. Output goes to a file (never a pipe that
    nobody reads, which would stall the server once full); it is shown if the server fails to start."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="gateway-test-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", *args], cwd=ROOT, env=full_env,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_http(health_url, proc=proc, log_path=log_path)
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 15 s."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_PROCESSES: dict[str, subprocess.Popen] = {}


def process_of(url: str) -> subprocess.Popen:
    """The server process behind a URL yielded by ``gateway()``."""
    return _PROCESSES[url]


@contextlib.contextmanager
def simulator(**flags: str) -> Iterator[str]:
    """Start ``gateway simulate``; yields its base URL (without /v1)."""
    port = free_port()
    args = ["simulate", "--port", str(port)]
    for name, value in flags.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    with running(args, f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def gateway(policy: Path | str, env: dict[str, str] | None = None, extra: list[str] | None = None,
            log_path: Path | None = None) -> Iterator[str]:
    """Start ``gateway serve``; yields its base URL (without /v1)."""
    port = free_port()
    args = ["serve", "--policy", str(policy), "--port", str(port), *(extra or [])]
    url = f"http://127.0.0.1:{port}"
    with running(args, f"{url}/readyz", env, log_path) as proc:
        _PROCESSES[url] = proc
        try:
            yield url
        finally:
            _PROCESSES.pop(url, None)
