"""Helpers for the state-layer tests (no tests here): the real Redis, a private redis-server, counters.

The tests run against a real Redis (``GATEWAY_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``)
and fail, never skip, when it does not answer: start one with ``bash .ci/start-redis.sh``. Every test
uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio

from gateway.state.redis_backend import RedisBackend

REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_redis(url: str = REDIS_URL) -> None:
    try:
        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis at {url} does not answer ({exc}). The state tests need a real Redis: "
            "run `bash .ci/start-redis.sh` (or set GATEWAY_TEST_REDIS_URL).",
            pytrace=False,
        )


class Hooks:
    """Records the ``on_error`` / ``on_health`` callbacks a backend makes."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.health: list[bool] = []

    def on_error(self, operation: str) -> None:
        self.errors[operation] += 1

    def on_health(self, up: bool) -> None:
        self.health.append(up)


async def delete_prefix(url: str, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def redis_backend(url: str = REDIS_URL, prefix: str | None = None, **options: object) -> AsyncIterator[RedisBackend]:
    """A ``RedisBackend`` on a fresh key prefix, its keys deleted afterwards."""
    require_redis(url)
    prefix = prefix or f"gw:test:{uuid.uuid4().hex[:10]}:"
    backend = RedisBackend(url, prefix=prefix, **options)  # type: ignore[arg-type]
    try:
        yield backend
    finally:
        await backend.aclose()
        await delete_prefix(url, prefix)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private ``redis-server`` on a free port, that a test may kill, freeze and restart."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `bash .ci/start-redis.sh`", pytrace=False)
        self.binary = binary
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2).ping()
                return self
            except redis.RedisError:
                time.sleep(0.02)
        self.kill()
        pytest.fail(f"could not start redis-server on port {self.port}", pytrace=False)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(18)  # SIGCONT, in case a test froze it
        self.kill()
