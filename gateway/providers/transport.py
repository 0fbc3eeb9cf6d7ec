"""HTTP to one upstream origin, on aiohttp, with every library failure translated here.

Why this library (measured in ``bench/upstream_clients.py``; figures and reasons in ``bench/RESULTS.md``):
the gateway pays the client's CPU on every request, and against the same nginx mock the CPU per POST,
one at a time / 32 concurrent, was about: the hand-written httptools pool this replaces 50 / 17 µs,
pyreqwest (Rust reqwest/hyper) 110 / 40 µs, aiohttp 150 / 70 µs, httpx 750 / 1,800 µs. pyreqwest was
the cheapest library but could not be used: a request cancelled before its answer arrives (a client
that hangs up) keeps running in the library's runtime, so the upstream's connection stays open and a
model server keeps generating an answer nobody will read (its runtime drops the waiter, not the
request). aiohttp closes the connection when the awaiting task is cancelled, is already a dependency
(litellm, the simulator), and does what the hand-written pool got wrong:

- interim ``1xx`` responses are skipped; a connection is pooled only after a complete response;
- a POST is never re-sent on its own (aiohttp retries a dead kept-alive connection only for
  idempotent methods), so the upstream never sees a body twice;
- chunked, ``Content-Length`` and close-delimited bodies; ``gzip``/``deflate``/``br``/``zstd`` decoded
  (the caller sees plain bytes and must not trust ``content-encoding``);
- environment proxies (``HTTPS_PROXY``/``NO_PROXY``, via ``trust_env``) or the policy's proxy, CA
  bundle, client certificate and verify flag (``egress.py``); TLS failures carry their reason, which
  is logged;
- at most ``max_connections`` connections (a request waits ``connect`` seconds for one, then fails
  over), idle connections closed after ``idle_seconds``.

The gateway adds a cap on the bytes read from one answer (``read_all``/``read_chunk`` count decoded
bytes, so a compressed bomb is cut at the same cap) and the translation table (``_translate``):
nothing from aiohttp leaves this module.

    aiohttp exception                                  gateway error
    ConnectionTimeoutError (no connection in time)     UpstreamUnavailable  (all busy, or unreachable)
    ClientConnectorError and its TLS/proxy subclasses  UpstreamUnavailable  (with the reason, logged)
    ServerDisconnectedError, OSError before the head   UpstreamUnavailable  (closed before answering)
    ClientPayloadError (incl. content-encoding)        UpstreamProtocolError (broken off or undecodable)
    any other ClientError                              UpstreamProtocolError (malformed answer)
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import urllib.request
from collections.abc import Mapping
from types import TracebackType
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from gateway.core.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from gateway.providers.egress import EgressSettings, ProxyURL

log = logging.getLogger("gateway.upstream")



def split_base_url(base_url: str) -> tuple[str, str | None]:
    """``base_url`` without ``user:password@``, and those credentials as a Basic ``Authorization`` value."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported upstream URL {base_url!r} (http:// or https:// with a host)")
    if parts.username is None:
        return base_url.rstrip("/"), None
    host = parts.netloc.rpartition("@")[2]
    token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    return bare.rstrip("/"), "Basic " + base64.b64encode(token).decode("ascii")


def _reason(exc: BaseException) -> str:
    """What went wrong, in the words of the layer that knows ("certificate verify failed: ...")."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return str(exc.certificate_error)
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        if isinstance(error, ssl.SSLError):
            return f"TLS: {getattr(error, 'verify_message', None) or error.reason or error}"
        if error.errno:
            return os.strerror(error.errno)
        return str(error) or type(error).__name__
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return f"proxy answered {exc.status} {exc.message}"
    return str(exc) or type(exc).__name__


class AnswerTooLarge(UpstreamProtocolError):
    """An answer (or one stream event) over the deployment's bound: a 502 whose summary says which."""

    def __init__(self, message: str, what: str, cap: int) -> None:
        super().__init__(message)
        self.what, self.cap = what, cap

    def summary(self) -> str:
        return f"sent {self.what} larger than its max_response_bytes allows ({self.cap} bytes)"


class TransportSettings:
    """Connection limits of one upstream (see ``policy.models.ConnectionPool`` and ``TimeoutSettings``)."""

    __slots__ = ("connect_timeout", "max_connections", "idle_seconds")

    def __init__(self, connect_timeout: float = 5.0, max_connections: int = 10_000, idle_seconds: float = 60.0) -> None:
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.idle_seconds = idle_seconds


class UpstreamResponse:
    """One answer whose head has arrived. The exchange ends with ``aclose`` (also ``async with``): the
    connection goes back to the pool when the body was read to its end, and is closed otherwise, which
    tells the upstream to stop generating."""

    __slots__ = ("status", "_response", "_name", "_secrets", "_read", "_closed")

    def __init__(self, name: str, response: aiohttp.ClientResponse, secrets: tuple[str, ...]) -> None:
        self.status: int = response.status
        self._response = response
        self._name = name
        self._secrets = secrets
        self._read = 0
        self._closed = False

    @property
    def headers(self) -> Mapping[str, str]:
        """Response headers (case-insensitive; the first value of a repeated header)."""
        return self._response.headers

    @property
    def at_end(self) -> bool:
        """The whole body has been read."""
        return self._response.content.at_eof()

    def read_buffered(self, cap: int) -> bytes:
        """What has already arrived (``b""`` if nothing): no wait, so no timeout to arm."""
        try:
            chunk = self._response.content.read_nowait()
        except (aiohttp.ClientError, OSError) as exc:
            raise _translate(exc, self._name, self._secrets, head=False) from exc
        return self._count(chunk, cap)

    async def read_chunk(self, cap: int) -> bytes:
        """The next piece of the (decoded) body, ``b""`` at its end; more than ``cap`` bytes in all is an error."""
        try:
            chunk = await self._response.content.readany()
        except (aiohttp.ClientError, OSError) as exc:
            raise _translate(exc, self._name, self._secrets, head=False) from exc
        return self._count(chunk, cap)

    def _count(self, chunk: bytes, cap: int) -> bytes:
        self._read += len(chunk)
        if self._read > cap:
            raise AnswerTooLarge(
                f"deployment {self._name!r} sent an answer larger than its max_response_bytes ({cap} bytes)",
                "an answer", cap,
            )
        return chunk

    async def read_all(self, cap: int) -> bytes:
        """The whole body, refused once it passes ``cap`` bytes (never buffered beyond that)."""
        length = self._response.content_length
        if length is not None and length > cap and "content-encoding" not in self._response.headers:
            raise AnswerTooLarge(
                f"deployment {self._name!r} announced an answer of {length} bytes, over its "
                f"max_response_bytes ({cap} bytes)", "an answer", cap,
            )
        parts: list[bytes] = []
        if chunk := self.read_buffered(cap):  # often the whole body came with the head
            parts.append(chunk)
        while not self.at_end and (chunk := await self.read_chunk(cap)):
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._response.content.at_eof():
                self._response.release()  # complete: the connection goes back to the pool
            else:
                self._response.close()  # mid-answer: drop the connection, the upstream stops

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Transport:
    """Keep-alive HTTP/1.1 connections to one upstream base URL, for one deployment."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        egress: EgressSettings,
        settings: TransportSettings | None = None,
        name: str = "upstream",
        secrets: tuple[str, ...] = (),
        log_failures: bool = True,
    ) -> None:
        """``log_failures``: log a connection failure's reason (off for callers that log their own)."""
        self.settings = settings or TransportSettings()
        self.name = name
        self._log_failures = log_failures
        self.base_url, basic = split_base_url(base_url)
        fixed = {k.lower(): v for k, v in headers.items()}
        if basic is not None:
            if "authorization" in fixed:
                raise ValueError(f"deployment {name!r}: api_base carries user:password and an api_key is set too")
            fixed["authorization"] = basic
        self._headers = fixed
        self._egress = egress
        self._secrets = tuple(s for s in (*secrets, *egress.secrets) if s)
        self._ssl: ssl.SSLContext | bool = True if egress.is_default else egress.ssl_context()
        proxy = egress.proxy or (environment_proxy(self.base_url) if egress.environment_proxy else None)
        self.proxy = proxy
        self._proxy = URL(proxy.url) if proxy else None
        # The proxy's credentials go to the proxy only: on the CONNECT of an https upstream, or on each
        # request of a plain http one (which the proxy receives whole and forwards without this header).
        self._proxy_headers: dict[str, str] | None = None
        if proxy is not None and proxy.username:
            credentials = aiohttp.encode_basic_auth(proxy.username, proxy.password or "")
            self._secrets += (credentials.removeprefix("Basic "),)
            if self.base_url.startswith("https:"):
                self._proxy_headers = {"Proxy-Authorization": credentials}
            else:
                self._headers["proxy-authorization"] = credentials
        if proxy is not None and proxy.password:
            self._secrets += (proxy.password,)
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=self.settings.connect_timeout, sock_connect=self.settings.connect_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use: aiohttp binds a session to the running event loop.
        connector = aiohttp.TCPConnector(
            limit=self.settings.max_connections, limit_per_host=0, keepalive_timeout=self.settings.idle_seconds,
            ssl=self._ssl, ttl_dns_cache=10,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent",), timeout=self._timeout, auto_decompress=True,
            trust_env=False,  # the environment's proxy was resolved once, in __init__
        )
        return self._session

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.base_url + path, encoded=False)
        return url

    async def send(
        self, method: str, path: str, body: bytes | None = None, *, headers: Mapping[str, str] | None = None,
        head_timeout: float = 60.0,
    ) -> UpstreamResponse:
        """Send a request; return once the response head has arrived (within ``head_timeout``). The body
        is then read as it arrives (``read_buffered``, ``read_chunk``, ``read_all``)."""
        session = self._session or self._open()
        try:
            async with asyncio.timeout(head_timeout):
                response = await session.request(
                    method, self._url(path), data=body, headers=headers, proxy=self._proxy,
                    proxy_headers=self._proxy_headers, allow_redirects=False,
                )
        except aiohttp.ConnectionTimeoutError as exc:  # no connection in time: not the head's timeout
            raise _translate(exc, self.name, self._secrets, head=True, log_failures=self._log_failures) from exc
        except TimeoutError as exc:  # before OSError, of which TimeoutError is a subclass
            raise UpstreamTimeout(f"deployment {self.name!r} did not answer within {head_timeout:g}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise _translate(exc, self.name, self._secrets, head=True, log_failures=self._log_failures) from exc
        return UpstreamResponse(self.name, response, self._secrets)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def environment_proxy(base_url: str) -> ProxyURL | None:
    """The proxy the environment names for ``base_url`` (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``,
    upper or lower case, unless ``NO_PROXY`` covers the host), as curl and litellm's clients read it.

    Resolved once per deployment: the origin is fixed, and asking per request (aiohttp's ``trust_env``)
    re-reads the environment and ``~/.netrc`` on every call, which tripled the client's CPU."""
    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    host = parts.hostname or ""
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # documented; not in typeshed
    if bypass(host if parts.port is None else f"{host}:{parts.port}", proxies):
        return None
    found = proxies.get(parts.scheme) or proxies.get("all")
    return ProxyURL.parse(found if "://" in found else "http://" + found) if found else None


def _scrubbed(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _translate(
    exc: BaseException, name: str, secrets: tuple[str, ...], *, head: bool, log_failures: bool = True
) -> UpstreamError:
    reason = _scrubbed(_reason(exc), secrets)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamUnavailable(
            f"deployment {name!r}: no connection within the connect timeout (the upstream is unreachable "
            "or all of its max_connections are busy)"
        )
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientHttpProxyError):
        # The reason is what an operator needs (a certificate the company CA did not sign, a refused
        # port, a proxy's 407): log it, since the client only sees the gateway's message.
        if log_failures:
            log.warning("cannot connect to deployment %r: %s", name, reason)
        return UpstreamUnavailable(f"cannot connect to deployment {name!r}: {reason}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamProtocolError(f"deployment {name!r} broke off or garbled its answer: {reason}")
    if head and isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError | OSError):
        return UpstreamUnavailable(f"deployment {name!r} closed the connection before answering")
    if head:
        return UpstreamProtocolError(f"deployment {name!r} sent a malformed HTTP response: {reason}")
    return UpstreamProtocolError(f"deployment {name!r} broke off its answer: {reason}")
