"""Raw-socket upstreams, certificates and a forward proxy for the transport tests, all on loopback.

``RawUpstream`` hands each accepted connection to a coroutine the test writes, so a test can send
exactly the bytes an odd-but-legal (or hostile) server would: interim responses, split headers,
close-delimited bodies, a connection dropped after the request arrived. It records every request it
read and how many connections are open, so a test can assert what the upstream saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.core.types import Endpoint
from gateway.policy.models import Deployment, TimeoutSettings
from gateway.providers.base import Timeouts, UpstreamCall

Handler = Callable[["Conn"], Awaitable[None]]


@dataclass
class Request:
    head: bytes
    body: bytes

    @property
    def line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode()

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode()
        return None


@dataclass
class Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    upstream: RawUpstream

    async def request(self) -> Request | None:
        """The next request on this connection (``None`` when the client closed it)."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        request = Request(head, b"")
        length = request.header("content-length")
        if length:
            request.body = await self.reader.readexactly(int(length))
        self.upstream.requests.append(request)
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def closed_by_client(self, within: float = 5.0) -> bool:
        """Whether the client closes this connection within ``within`` seconds."""
        try:
            async with asyncio.timeout(within):
                while await self.reader.read(65536):
                    pass
            return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True


@dataclass
class RawUpstream:
    handler: Handler
    host: str = "127.0.0.1"
    ssl_context: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    open_connections: int = 0
    most_open: int = 0
    client_closed: list[bool] = field(default_factory=list)
    port: int = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        self.most_open = max(self.most_open, self.open_connections)
        try:
            await self.handler(Conn(reader, writer, self))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self.open_connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    @property
    def base(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/v1"


@contextlib.asynccontextmanager
async def raw_upstream(handler: Handler, host: str = "127.0.0.1",
                       ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[RawUpstream]:
    upstream = RawUpstream(handler, host, ssl_context)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = await asyncio.start_server(upstream._serve, host, 0, family=family, ssl=ssl_context)
    upstream.port = server.sockets[0].getsockname()[1]
    try:
        yield upstream
    finally:
        server.close()
        server.close_clients() if hasattr(server, "close_clients") else None


def response(body: bytes, status: str = "200 OK", headers: str = "content-type: application/json\r\n") -> bytes:
    return f"HTTP/1.1 {status}\r\n{headers}content-length: {len(body)}\r\n\r\n".encode() + body


def completion(text: str) -> bytes:
    return (
        b'{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"' + text.encode() + b'"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
    )


def deployment(base: str, **overrides: Any) -> Deployment:
    """A self-hosted deployment as the policy gives it, validated like one read from a policy file."""
    fields: dict[str, Any] = dict(
        name="dep", type="vllm", model="m", api_base=base, hosting="self",
        timeouts=TimeoutSettings(connect=2, first_byte=5), max_response_bytes=1 << 20,
    )
    fields.update(overrides)
    return Deployment(**fields)


def vendor_deployment(name: str, type: str, model: str, base: str, **overrides: Any) -> Deployment:
    """A vendor deployment (reached through litellm for ``anthropic`` and ``gemini``) with a key and a price."""
    fields: dict[str, Any] = dict(
        name=name, type=type, model=model, api_base=base, api_key="k", hosting="vendor",
        price={"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    )
    fields.update(overrides)
    return Deployment(**fields)


def call(body: dict[str, Any] | None = None, stream: bool = False, timeouts: Timeouts | None = None) -> UpstreamCall:
    return UpstreamCall(
        endpoint=Endpoint.CHAT, body=body or {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        stream=stream, request_id="r1", timeouts=timeouts or Timeouts(connect=2, first_byte=5, idle=5, total=20),
    )


# ---------------------------------------------------------------------------------------------
# Certificates, made with the openssl command line for each test session.


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A second CA that signed nothing the servers use: trusting it alone must fail."""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(directory: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)


def _leaf(directory: Path, name: str, ca: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", cwd=directory)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=directory)


def make_certificates(directory: Path) -> Certificates:
    """A private CA, a server certificate for localhost/127.0.0.1/::1, and a client certificate."""
    _ca(directory, "company-ca")
    _ca(directory, "other-ca")
    _leaf(directory, "server", "company-ca",
          "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    _leaf(directory, "client", "company-ca", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    return Certificates(
        ca=directory / "company-ca.pem", server_cert=directory / "server.pem", server_key=directory / "server.key",
        client_cert=directory / "client.pem", client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )


def server_tls(certs: Certificates, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=certs.ca)
    return context


# ---------------------------------------------------------------------------------------------
# A forward proxy: absolute-form HTTP requests and CONNECT tunnels, recording what it was asked.


@dataclass
class ForwardProxy:
    port: int = 0
    seen: list[str] = field(default_factory=list)
    """Each request line the proxy received (``CONNECT host:port HTTP/1.1`` or ``POST http://...``)."""
    auth: list[str | None] = field(default_factory=list)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.asynccontextmanager
async def forward_proxy() -> AsyncIterator[ForwardProxy]:
    proxy = ForwardProxy()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0].decode()
        proxy.seen.append(line)
        auth = next((h.split(b":", 1)[1].strip().decode() for h in head.split(b"\r\n")
                     if h.lower().startswith(b"proxy-authorization:")), None)
        proxy.auth.append(auth)
        method, target, _ = line.split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            from urllib.parse import urlsplit

            url = urlsplit(target)
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
            # One request per proxied connection (the upstream is told to close after it), so every
            # request arrives here and is rewritten from absolute form.
            kept = [h for h in head.split(b"\r\n")[1:] if h and not h.lower().startswith((b"connection:",
                                                                                          b"proxy-connection:"))]
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            up_writer.write(f"{method} {path} HTTP/1.1\r\n".encode() + b"\r\n".join(kept)
                            + b"\r\nconnection: close\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy
    finally:
        server.close()
