"""The Redis the "everything on" gateway keeps its cache, rate limits and budgets in.

The one at ``--redis-url`` is used when it answers; otherwise, for a loopback URL, the harness starts
its own ``redis-server`` there (no persistence) and stops it at the end. The benchmark's database is
emptied before each system that uses it, so every cache lookup misses and no counter carries over.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from harness.procs import Server, taskset


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def answers(url: str) -> bool:
    try:
        return bool(_client(url).ping())
    except redis.RedisError:
        return False


def ensure(url: str, run_dir: Path, cpus: set[int] | None) -> Server | None:
    """A Redis answering at ``url``; the server the harness started for it, if it had to."""
    if answers(url):
        return None
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    if not (host == "localhost" or host.startswith("127.")):
        raise RuntimeError(f"Redis at {url} does not answer, and the harness only starts one on loopback")
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("no Redis answers and redis-server is not installed: run `bash bench/install-tools.sh`")
    argv = [*taskset(cpus), binary, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(run_dir)]
    server = Server("redis", argv, run_dir / "redis.log")
    deadline = time.monotonic() + 10
    while not answers(url):
        if server.proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"redis-server did not start:\n{server.tail()}")
        time.sleep(0.1)
    return server


def flush(url: str) -> None:
    """Empty the benchmark's database (only the one numbered in the URL)."""
    _client(url).flushdb()


def keys(url: str) -> int:
    return int(_client(url).dbsize())


def info(url: str) -> dict:
    data = _client(url).info("server")
    return {"pid": int(data["process_id"]), "version": str(data["redis_version"])}
