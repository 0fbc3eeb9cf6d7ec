"""Tests touch only servers they started: no test names a Redis on its default port or empties one."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
# A fixed local Redis address (the compose and chart tests name `redis:6379`, a container's, which is fine).
_LOCAL_DEFAULT = re.compile(r"(127\.0\.0\.1|localhost)(:|/)6379|port\s*=\s*6379|-p\s+\"?6379")
_EMPTYING = re.compile(r"\b(flushdb|flushall)\b|SCRIPT\W+FLUSH", re.I)


def test_no_test_uses_a_redis_it_did_not_start() -> None:
    offenders = []
    for path in sorted(HERE.rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        if _LOCAL_DEFAULT.search(text):
            offenders.append(f"{path.relative_to(HERE)}: names the default local Redis")
        if _EMPTYING.search(text) and "redis_url()" not in text and "RedisServer" not in text:
            offenders.append(f"{path.relative_to(HERE)}: empties a Redis without starting its own")
    assert not offenders


def test_ci_starts_no_redis_on_the_default_port() -> None:
    ci = (HERE.parent / ".ci" / "run").read_text() + (HERE.parent / ".ci" / "install-redis.sh").read_text()
    assert "--port 6379" not in ci and "daemonize" not in ci
