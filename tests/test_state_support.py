"""Helpers for the state-layer tests (no tests here): a private redis-server, key prefixes, counters.

The tests run against a real Redis that they start themselves: ``redis_url()`` starts one
``redis-server`` on a free loopback port for the whole test session (on first use; stopped when the
session ends) and never touches a Redis it did not start, such as one on the default port. Without
``redis-server`` installed the tests fail, never skip: ``bash .ci/install-redis.sh`` installs it.
Every test still uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
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


class _Session:
    """The session's private redis-server (a class attribute: module globals are not reassigned)."""

    server: RedisServer | None = None


def redis_url() -> str:
    """The URL of this test session's own redis-server, started on first use."""
    if _Session.server is None:
        _Session.server = RedisServer().start()
        atexit.register(_Session.server.kill)
    return _Session.server.url


def require_redis(url: str | None = None) -> None:
    url = url or redis_url()
    try:
        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.fail(f"the test's own Redis at {url} does not answer ({exc})", pytrace=False)


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
async def redis_backend(url: str | None = None, prefix: str | None = None, **options: object) -> AsyncIterator[RedisBackend]:
    """A ``RedisBackend`` on a fresh key prefix (in the session's own Redis by default), its keys deleted afterwards."""
    url = url or redis_url()
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
            pytest.fail("redis-server is not installed: run `bash .ci/install-redis.sh`", pytrace=False)
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
