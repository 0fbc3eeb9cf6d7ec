"""Egress settings against real servers: a private CA, mutual TLS, and forward proxies (a CONNECT proxy
written here and Debian's tinyproxy), on the passthrough path and on the litellm path alike.

Certificates are made for each run with the openssl command line. Proxied traffic goes to loopback
only; the proxies record what they were asked, so a test can tell a proxied request from a direct one.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.errors import UpstreamError, UpstreamUnavailable
from gateway.policy.models import Egress
from gateway.providers.base import Timeouts
from gateway.providers.openai_compat import OpenAICompatProvider
from gateway.providers.registry import ProviderContext
from gateway.simulator.server import SimulatorServer
from tests.servers import free_port
from tests.upstream_support import (
    Certificates,
    Conn,
    call,
    completion,
    deployment,
    forward_proxy,
    make_certificates,
    raw_upstream,
    response,
    server_tls,
    vendor_deployment,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
PROXY_ENV = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_ambient_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


async def answer(conn: Conn) -> None:
    while await conn.request() is not None:
        await conn.send(response(completion("through")))


def provider(base: str, egress: Egress) -> OpenAICompatProvider:
    return OpenAICompatProvider(deployment(base, egress=egress), ProviderContext())


FAST = Timeouts(connect=2, first_byte=5, idle=5, total=10)


# -- TLS: a private CA, verify, mutual TLS ------------------------------------------------------------


async def test_private_ca_is_trusted_only_through_ca_bundle(certs: Certificates, caplog) -> None:
    async with raw_upstream(answer, ssl_context=server_tls(certs)) as up:
        base = up.base.replace("127.0.0.1", "localhost")
        untrusted = provider(base, Egress())
        with caplog.at_level(logging.WARNING, logger="gateway.upstream"), pytest.raises(UpstreamUnavailable) as info:
            await untrusted.complete(call(timeouts=FAST))
        # The TLS reason reaches the operator's log and the error, not just "cannot connect".
        assert "certificate verify failed" in info.value.message or "local issuer" in info.value.message
        assert any("local issuer" in r.getMessage() for r in caplog.records)
        wrong = provider(base, Egress(ca_bundle=str(certs.other_ca)))
        with pytest.raises(UpstreamUnavailable):
            await wrong.complete(call(timeouts=FAST))
        trusted = provider(base, Egress(ca_bundle=str(certs.ca)))
        assert (await trusted.complete(call(timeouts=FAST))).parsed["choices"][0]["message"]["content"] == "through"
        insecure = provider(base, Egress(verify=False))
        assert (await insecure.complete(call(timeouts=FAST))).status == 200
        for p in (untrusted, wrong, trusted, insecure):
            await p.aclose()


async def test_mutual_tls_needs_the_client_certificate(certs: Certificates) -> None:
    async with raw_upstream(answer, ssl_context=server_tls(certs, require_client_cert=True)) as up:
        base = up.base.replace("127.0.0.1", "localhost")
        anonymous = provider(base, Egress(ca_bundle=str(certs.ca)))
        with pytest.raises(UpstreamError):  # refused in the handshake, or the connection dropped after it
            await anonymous.complete(call(timeouts=FAST))
        identified = provider(base, Egress(ca_bundle=str(certs.ca), client_cert=str(certs.client_cert),
                                           client_key=str(certs.client_key)))
        assert (await identified.complete(call(timeouts=FAST))).status == 200
        await anonymous.aclose()
        await identified.aclose()


def test_an_unreadable_ca_bundle_is_refused_when_the_provider_is_built(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read CA bundle"):
        provider("https://localhost:1/v1", Egress(ca_bundle=str(tmp_path / "missing.pem")))


# -- proxies: the policy's, the environment's, none --------------------------------------------------


async def test_the_policy_proxy_carries_http_and_https_with_credentials(certs: Certificates) -> None:
    async with forward_proxy() as proxy, raw_upstream(answer) as plain, \
            raw_upstream(answer, ssl_context=server_tls(certs)) as tls:
        url = f"http://gw:pr0xy-pass@127.0.0.1:{proxy.port}"
        p = provider(plain.base, Egress(proxy=url))
        assert (await p.complete(call(timeouts=FAST))).status == 200
        assert proxy.seen[-1].startswith(f"POST http://127.0.0.1:{plain.port}/v1/chat/completions")
        assert proxy.auth[-1] == "Basic Z3c6cHIweHktcGFzcw=="
        s = provider(tls.base.replace("127.0.0.1", "localhost"), Egress(proxy=url, ca_bundle=str(certs.ca)))
        assert (await s.complete(call(timeouts=FAST))).status == 200
        assert proxy.seen[-1] == f"CONNECT localhost:{tls.port} HTTP/1.1"
        await p.aclose()
        await s.aclose()


async def test_environment_proxies_are_honoured_unless_the_policy_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with forward_proxy() as proxy, raw_upstream(answer) as up:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        via_env = provider(up.base, Egress())
        await via_env.complete(call(timeouts=FAST))
        assert len(proxy.seen) == 1
        direct = provider(up.base, Egress(environment_proxy=False))
        await direct.complete(call(timeouts=FAST))
        assert len(proxy.seen) == 1 and len(up.requests) == 2
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        bypassed = provider(up.base, Egress())
        await bypassed.complete(call(timeouts=FAST))
        assert len(proxy.seen) == 1 and len(up.requests) == 3
        for p in (via_env, direct, bypassed):
            await p.aclose()


async def test_proxy_credentials_never_reach_error_messages() -> None:
    port = free_port()  # nothing listens: the proxy is unreachable
    p = provider("http://127.0.0.1:9/v1", Egress(proxy=f"http://gw:very-secret-pw@127.0.0.1:{port}"))
    with pytest.raises(UpstreamUnavailable) as info:
        await p.complete(call(timeouts=FAST))
    assert "very-secret-pw" not in info.value.message
    await p.aclose()


# -- a real forward proxy, both upstream paths ---------------------------------------------------------


@pytest.fixture(scope="module")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    binary = shutil.which("tinyproxy")
    assert binary, "tinyproxy is not installed: run `bash .ci/install-test-services.sh`"
    directory = tmp_path_factory.mktemp("tinyproxy")
    port = free_port()
    log = directory / "tinyproxy.log"
    config = directory / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{log}\"\nLogLevel Connect\nMaxClients 20\n"
        f"Allow 127.0.0.1\nPidFile \"{directory / 'tinyproxy.pid'}\"\n"
    )
    proc = subprocess.Popen([binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"tinyproxy did not start: {log.read_text() if log.exists() else ''}")
        yield port, log
    finally:
        proc.terminate()
        proc.wait(5)


async def test_tinyproxy_carries_the_passthrough_and_the_litellm_path_alike(tinyproxy) -> None:

    from gateway.providers.litellm_adapter import LiteLLMProvider

    port, log = tinyproxy
    egress = Egress(proxy=f"http://127.0.0.1:{port}")
    async with SimulatorServer(ttft_ms=0) as sim:
        passthrough = provider(sim.openai_base_url, egress)
        reply = await passthrough.complete(call({"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]},
                                                timeouts=FAST))
        assert reply.status == 200
        anthropic = LiteLLMProvider(vendor_deployment("claude", "anthropic", "claude-3-5-sonnet-20240620", sim.url,
                                                      egress=egress))
        body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
        assert (await anthropic.complete(call(body, timeouts=FAST))).status == 200
        await asyncio.sleep(0.2)
        seen = log.read_text()
        assert f"127.0.0.1:{sim.port}/v1/chat/completions" in seen or "/v1/chat/completions" in seen
        assert "/v1/messages" in seen, "the litellm path did not go through the proxy"
        await passthrough.aclose()
        await anthropic.aclose()


async def test_the_litellm_path_honours_a_private_ca_and_the_environment_proxy(
    certs: Certificates, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same egress settings, applied to litellm's client: trusted only with ca_bundle, and routed
    through HTTPS_PROXY when the policy sets no proxy."""

    from gateway.policy.models import TimeoutSettings
    from gateway.providers.litellm_adapter import LiteLLMProvider

    async def messages(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.send(response(
                b'{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text",'
                b'"text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}'))

    async with forward_proxy() as proxy, raw_upstream(messages, ssl_context=server_tls(certs)) as up:
        base = f"https://localhost:{up.port}"
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")

        def claude(egress: Egress) -> LiteLLMProvider:
            return LiteLLMProvider(vendor_deployment("claude", "anthropic", "claude-x", base, egress=egress,
                                                     timeouts=TimeoutSettings(first_byte=5, total=10)))

        body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
        trusted = claude(Egress(ca_bundle=str(certs.ca)))
        assert (await trusted.complete(call(body, timeouts=FAST))).status == 200
        assert proxy.seen == [f"CONNECT localhost:{up.port} HTTP/1.1"]
        untrusted = claude(Egress(ca_bundle=str(certs.other_ca)))
        with pytest.raises(UpstreamUnavailable):
            await untrusted.complete(call(body, timeouts=FAST))
        await trusted.aclose()
        await untrusted.aclose()


async def test_environment_proxy_and_no_proxy_mean_the_same_on_both_paths() -> None:
    """Default egress: HTTP_PROXY carries the passthrough and litellm's Anthropic and Gemini calls alike,
    and NO_PROXY exempts all three alike (each environment in a fresh gateway-like process)."""
    import os
    import sys

    from tests.servers import ROOT

    async with forward_proxy() as proxy, SimulatorServer(ttft_ms=0) as sim:
        async def probe(**env: str) -> None:
            clean = {k: v for k, v in os.environ.items() if k not in PROXY_ENV}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.egress_probe", sim.url, cwd=ROOT, env={**clean, **env},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0 and out.decode().strip().endswith("ok"), out.decode()[-2000:]

        await probe(HTTP_PROXY=f"http://127.0.0.1:{proxy.port}")
        paths = [line.split(" ")[1].split(str(sim.port), 1)[1] for line in proxy.seen]
        assert paths == ["/v1/chat/completions", "/v1/messages", "/v1beta/models/gemini-1.5-flash:generateContent"]
        await probe(HTTP_PROXY=f"http://127.0.0.1:{proxy.port}", NO_PROXY="127.0.0.1")
        assert len(proxy.seen) == 3, f"NO_PROXY was not honoured by every path: {proxy.seen}"
