"""A deployment's egress settings (proxy, CA bundle, client certificate, verify), read once per policy load.

Both upstream paths take their network settings from here: the passthrough transport (``transport.py``)
and the litellm adapter (an ``httpx`` client built by ``litellm_egress.litellm_client``), so a proxy or a private CA
configured in the policy reaches the upstream the same way whichever path serves the deployment.

Proxy resolution, the same on both paths:

- ``proxy`` set: every request to the upstream goes through it (HTTPS with ``CONNECT``), whatever the
  environment says; ``user:password@`` in its URL becomes ``Proxy-Authorization``.
- ``proxy`` unset and ``environment_proxy`` true (the default): ``HTTPS_PROXY``/``HTTP_PROXY``/
  ``ALL_PROXY`` and ``NO_PROXY`` from the process environment, as curl, httpx and litellm read them.
- ``environment_proxy`` false: direct connections.

Certificates: ``ca_bundle`` is *added* to the system's trust store (``SSL_CERT_FILE``, when set, still
replaces the system store process-wide, as OpenSSL defines it); ``client_cert``/``client_key`` give the
identity for mutual TLS; ``verify: false`` accepts any certificate (tests only).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from gateway.policy.models import Egress


class EgressConfigError(ValueError):
    """A certificate or key file named by the policy cannot be read."""


@dataclass(frozen=True, slots=True)
class ProxyURL:
    """A forward proxy: its URL without credentials, and the credentials apart (never logged)."""

    url: str
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, raw: str) -> ProxyURL:
        parts = urlsplit(raw)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"  # an IPv6 literal
        if parts.port:
            netloc += f":{parts.port}"
        bare = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(bare, user, password)

    def with_credentials(self) -> str:
        """The URL with its credentials, for clients that only take them that way (httpx)."""
        if not self.username:
            return self.url
        parts = urlsplit(self.url)
        auth = quote(self.username, safe="") + (":" + quote(self.password or "", safe="") if self.password else "")
        return urlunsplit((parts.scheme, f"{auth}@{parts.netloc}", parts.path, "", ""))


def _read(path: str | None, what: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise EgressConfigError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class EgressSettings:
    """The resolved settings of one deployment (see ``policy.models.Egress``)."""

    proxy: ProxyURL | None = None
    environment_proxy: bool = True
    verify: bool = True
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    ca_pem: bytes | None = None
    identity_pem: bytes | None = None
    """Client certificate and key in one PEM (what rustls and reqwest take)."""

    @classmethod
    def from_policy(cls, egress: Egress | None) -> EgressSettings:
        """From a deployment's ``egress`` (``None``: the defaults)."""
        if egress is None:
            return cls()
        cert = _read(egress.client_cert, "client certificate")
        key = _read(egress.client_key, "client key")
        identity = None
        if cert is not None:
            identity = cert if key is None else cert.rstrip(b"\n") + b"\n" + key
        return cls(
            proxy=ProxyURL.parse(egress.proxy) if egress.proxy else None,
            environment_proxy=egress.environment_proxy,
            verify=egress.verify,
            ca_bundle=egress.ca_bundle,
            client_cert=egress.client_cert,
            client_key=egress.client_key,
            ca_pem=_read(egress.ca_bundle, "CA bundle"),
            identity_pem=identity,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in an error message or a log line."""
        return tuple(s for s in (self.proxy.password if self.proxy else None,) if s)

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context with the same trust and identity (for the litellm path's httpx client)."""
        context = ssl.create_default_context()
        if self.ca_bundle:
            context.load_verify_locations(cafile=self.ca_bundle)
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    @property
    def is_default(self) -> bool:
        return self == EgressSettings()
