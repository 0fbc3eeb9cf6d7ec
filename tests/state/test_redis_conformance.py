"""Every Redis URL form means the same database and the same security on both clients (the lean RESP
connection of the request path and redis-py), against redis-server instances this test starts:
password and ACL user, TLS with certificates made here (and mutual TLS), a unix socket, ``?db=``.

Each case writes through one client and reads through the other: a cache fill (redis-py) must be a hit
for the lookup (lean path), and the rate-limit script (lean path) and its correction (redis-py) must
land on the same counter.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.state.backend import RateCharge
from gateway.state.redis_backend import RedisBackend
from gateway.state.redis_settings import RedisSettings, RedisURLError
from gateway.state.service import StateService
from tests.redis_support import RedisServer
from tests.servers import free_port
from tests.state.test_gateway_state import ENV
from tests.upstream_support import Certificates, make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("redis-certs"))


async def assert_both_paths_share_one_database(url: str, instance: RedisServer, db: int, *cli: str) -> None:
    backend = RedisBackend(url, timeout=2)
    try:
        assert await backend.ping(), backend.last_error
        await backend.cache_set("digest", b"answer", 60)  # redis-py
        assert backend._fast is not None
        assert await backend.cache_get(["digest"]) == [b"answer"]  # lean path: the same database
        outcome = await backend.rate_consume([RateCharge("{t}key:k:tokens", 1000, 100)], 60_000)  # lean path
        await backend.rate_adjust("{t}key:k:tokens", outcome.window, -40)  # redis-py
        again = await backend.rate_consume([RateCharge("{t}key:k:tokens", 1000, 0)], 60_000)
        assert again.counts[0].current == 60
        # And the server agrees on which database that was.
        assert instance.cli(*cli, "-n", str(db), "exists", "gw:v1:cache:digest") == "1"
        if db:
            assert instance.cli(*cli, "-n", "0", "exists", "gw:v1:cache:digest") == "0"
    finally:
        await backend.aclose()


@pytest.mark.parametrize("suffix,db", [("/3", 3), ("?db=4", 4), ("/0", 0), ("", 0)])
async def test_database_from_path_or_query_on_both_paths(tmp_path: Path, suffix: str, db: int) -> None:
    instance = RedisServer(directory=tmp_path).start()
    try:
        await assert_both_paths_share_one_database(f"redis://127.0.0.1:{instance.port}{suffix}", instance, db)
    finally:
        instance.stop()


async def test_password_and_acl_user_on_both_paths(tmp_path: Path) -> None:
    instance = RedisServer("--requirepass", "p@ss w0rd", directory=tmp_path).start()
    try:
        auth = ["-a", "p@ss w0rd", "--no-auth-warning"]
        assert instance.cli(*auth, "acl", "setuser", "gateway", "on", ">gw-secret", "~*", "+@all") == "OK"
        await assert_both_paths_share_one_database(
            f"redis://:p%40ss%20w0rd@127.0.0.1:{instance.port}/2", instance, 2, *auth)
        await assert_both_paths_share_one_database(
            f"redis://gateway:gw-secret@127.0.0.1:{instance.port}/5", instance, 5, *auth)
    finally:
        instance.stop()


async def test_a_wrong_password_is_logged_at_start_and_reported(tmp_path: Path, caplog) -> None:
    instance = RedisServer("--requirepass", "right-one", directory=tmp_path).start()
    try:
        state = StateService.from_settings(f"redis://:wrong-one@127.0.0.1:{instance.port}/0", timeout=2)
        with caplog.at_level(logging.ERROR, logger="gateway.state"):
            await state.start()
        # Redis's WRONGPASS, as redis-py words it.
        assert state.last_error is not None and "invalid username-password pair" in state.last_error
        assert "wrong-one" not in state.last_error
        logged = [r.getMessage() for r in caplog.records if r.name == "gateway.state"]
        assert any("invalid username-password" in m and f"127.0.0.1:{instance.port}" in m for m in logged), logged
        assert not any("wrong-one" in m for m in logged)
        await state.aclose()
    finally:
        instance.stop()


def tls_instance(directory: Path, certs: Certificates, *, clients: str) -> RedisServer:
    tls_port = free_port()
    instance = RedisServer(
        "--tls-port", str(tls_port), "--tls-cert-file", str(certs.server_cert),
        "--tls-key-file", str(certs.server_key), "--tls-ca-cert-file", str(certs.ca),
        "--tls-auth-clients", clients, directory=directory,
    )
    instance.tls_port = tls_port  # type: ignore[attr-defined]
    return instance.start()


async def test_tls_with_a_private_ca_on_both_paths(tmp_path: Path, certs: Certificates) -> None:
    instance = tls_instance(tmp_path, certs, clients="no")
    port = instance.tls_port  # type: ignore[attr-defined]
    try:
        url = f"rediss://localhost:{port}/1?ssl_ca_certs={certs.ca}"
        await assert_both_paths_share_one_database(url, instance, 1)
        # Untrusted: fails, and says why.
        untrusted = StateService.from_settings(f"rediss://localhost:{port}/1?ssl_ca_certs={certs.other_ca}", timeout=2)
        await untrusted.start()
        assert untrusted.last_error is not None and "certificate verify failed" in untrusted.last_error.lower()
        await untrusted.aclose()
        # ssl_cert_reqs=none: encrypted, unverified (tests only).
        await assert_both_paths_share_one_database(f"rediss://127.0.0.1:{port}/6?ssl_cert_reqs=none", instance, 6)
    finally:
        instance.stop()


async def test_mutual_tls_on_both_paths(tmp_path: Path, certs: Certificates) -> None:
    instance = tls_instance(tmp_path, certs, clients="yes")
    port = instance.tls_port  # type: ignore[attr-defined]
    try:
        anonymous = RedisBackend(f"rediss://localhost:{port}/0?ssl_ca_certs={certs.ca}", timeout=2)
        assert not await anonymous.ping()
        await anonymous.aclose()
        url = (f"rediss://localhost:{port}/0?ssl_ca_certs={certs.ca}&ssl_certfile={certs.client_cert}"
               f"&ssl_keyfile={certs.client_key}")
        await assert_both_paths_share_one_database(url, instance, 0)
    finally:
        instance.stop()


async def test_unix_socket_on_both_paths(tmp_path: Path) -> None:
    socket = tmp_path / "redis.sock"
    instance = RedisServer("--unixsocket", str(socket), "--unixsocketperm", "700", directory=tmp_path).start()
    try:
        await assert_both_paths_share_one_database(f"unix://{socket}?db=7", instance, 7)
    finally:
        instance.stop()


@pytest.mark.parametrize("url,message", [
    ("redis://h:6379/2?db=3", "two databases"),
    ("redis://h:6379/x", "must be a number"),
    ("redis://h:6379/0?ssl_ca_cert=/ca.pem", "unknown Redis URL option"),
    ("redis://h:6379/0?ssl_ca_certs=/ca.pem", "need a rediss://"),
    ("rediss://h:6379/0?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ("http://h:6379", "scheme"),
    ("unix://", "socket path"),
])
def test_malformed_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(RedisURLError, match=message):
        RedisSettings.from_url(url)


def test_url_forms_parse_to_one_meaning() -> None:
    assert RedisSettings.from_url("redis://h:6380?db=3") == RedisSettings.from_url("redis://h:6380/3")
    s = RedisSettings.from_url("rediss://u%40x:p%3Aw@[::1]:7000/2?ssl_cert_reqs=none")
    assert (s.host, s.port, s.db, s.username, s.password, s.tls) == ("::1", 7000, 2, "u@x", "p:w", True)
    assert not s.ssl_check_hostname and s.describe() == "rediss://[::1]:7000/2"
    assert "p:w" not in s.describe()
    assert RedisSettings.from_url("unix:///run/r.sock?db=1").describe() == "unix:///run/r.sock/1"
    with pytest.raises(RedisURLError, match="only database 0"):
        RedisSettings.from_url("redis://h:7000/3").cluster_kwargs()


def test_a_gateway_refused_by_redis_logs_why_and_readyz_says_it(tmp_path: Path) -> None:
    import httpx

    from tests import servers
    from tests.conftest import POLICIES

    instance = RedisServer("--requirepass", "the-right-one", directory=tmp_path / "redis").start()
    try:
        log = tmp_path / "gw.log"
        env = {"GATEWAY_REDIS_URL": f"redis://:not-the-password@127.0.0.1:{instance.port}/0"}
        with servers.gateway(POLICIES / "state.yaml", env={**ENV, **env}, log_path=log) as url:
            ready = httpx.get(f"{url}/readyz")
            assert ready.status_code == 200  # degraded, still serving
            assert "invalid username-password pair" in ready.json()["checks"]["redis"]
            assert "not-the-password" not in ready.text
        text = log.read_text()
        assert f"127.0.0.1:{instance.port}" in text and "invalid username-password pair" in text
        assert "not-the-password" not in text
    finally:
        instance.stop()
