"""The lean multiplexed Redis connection, against the real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from gateway.state.redis_settings import RedisSettings
from gateway.state.resp import RespConnection, RespError
from tests.state_support import redis_url, require_redis


@pytest.fixture
async def conn():
    require_redis()
    c = RespConnection.from_url(redis_url())
    assert c is not None
    yield c
    c.close()


async def test_concurrent_calls_get_their_own_replies(conn: RespConnection) -> None:
    prefix = uuid.uuid4().hex
    await asyncio.gather(*(conn.execute("SET", f"{prefix}:{i}", i, "EX", 30) for i in range(200)))
    replies = await asyncio.gather(*(conn.execute("GET", f"{prefix}:{i}") for i in range(200)))
    assert replies == [str(i).encode() for i in range(200)]
    assert await conn.execute("MGET", f"{prefix}:1", f"{prefix}:nope") == [b"1", None]


async def test_an_abandoned_call_keeps_the_reply_order(conn: RespConnection) -> None:
    slow = asyncio.ensure_future(conn.execute("BLPOP", "gw:test:empty-" + uuid.uuid4().hex, "0.2"))
    await asyncio.sleep(0.01)
    slow.cancel()
    assert await conn.execute("ECHO", "after") == b"after", "the cancelled call's reply was not handed on"


async def test_error_replies_and_script_reload(conn: RespConnection) -> None:
    with pytest.raises(RespError):
        await conn.execute("INCR", "gw:test:not-a-number-" + uuid.uuid4().hex, "extra-arg")
    sha = conn.register("return ARGV[1] .. KEYS[1]")
    await conn.execute("SCRIPT", "FLUSH")
    assert await conn.evalsha(sha, ["k"], ["v"]) == b"vk", "NOSCRIPT answered by loading the script"


async def test_reconnects_after_the_connection_is_lost(conn: RespConnection) -> None:
    assert await conn.execute("PING") == b"PONG"
    conn._protocol.transport.abort()  # type: ignore[union-attr]
    await asyncio.sleep(0.01)
    assert await conn.execute("PING") == b"PONG"


def test_every_url_form_is_served_from_the_shared_settings() -> None:
    for url in ("rediss://h:6380/0", "unix:///tmp/redis.sock?db=2", "redis://h:6380?db=3"):
        assert RespConnection.from_url(url).settings == RedisSettings.from_url(url)
    c = RespConnection.from_url("redis://:s%40cret@h:6380/3")
    s = c.settings
    assert (s.host, s.port, s.db, s.username, s.password) == ("h", 6380, 3, None, "s@cret")
