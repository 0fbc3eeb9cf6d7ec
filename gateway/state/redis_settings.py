"""Redis connection settings: every URL form parsed once, the one source both Redis clients build from.

The request path's lean connection (``resp.py``) and redis-py (everything else, and the whole of a
cluster) take host, database, credentials and TLS from the same ``RedisSettings``, so a URL can never
mean one database to one client and another to the other.

Accepted forms (``GATEWAY_REDIS_URL``)::

    redis://[[user]:password@]host[:port][/db][?db=N]
    rediss://[[user]:password@]host[:port][/db][?ssl_ca_certs=/ca.pem&ssl_cert_reqs=required
                                              &ssl_certfile=/c.pem&ssl_keyfile=/k.pem&ssl_check_hostname=true]
    unix://[[user]:password@]/path/to/redis.sock[?db=N]

- the database comes from the path or ``?db=``; both given and different is an error, as is any query
  option not listed here (a misspelt ``ssl_ca_cert`` must not silently mean "no CA");
- ``ssl_cert_reqs``: ``required`` (default), ``optional`` or ``none``; ``ssl_check_hostname`` defaults
  to true unless ``ssl_cert_reqs=none``;
- user and password are percent-decoded (``%40`` for ``@``);
- a Redis Cluster is detected from the server (``INFO cluster``), from any one node's URL; a cluster
  has only database 0 and is not reachable over a unix socket. Sentinel is not supported.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEMES = ("redis", "rediss", "unix")
CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
_QUERY_OPTIONS = ("db", "ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class RedisURLError(ValueError):
    """A Redis URL the gateway cannot use as written."""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None
    """Unix socket path (``unix://``); then ``host``/``port`` are unused."""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: str = "required"
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    @classmethod
    def from_url(cls, url: str) -> RedisSettings:
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise RedisURLError(f"Redis URL scheme must be one of {', '.join(s + '://' for s in SCHEMES)}")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(query) - set(_QUERY_OPTIONS))
        if unknown:
            raise RedisURLError(f"unknown Redis URL option(s) {', '.join(unknown)}; known: {', '.join(_QUERY_OPTIONS)}")
        tls = parts.scheme == "rediss"
        if not tls and any(k.startswith("ssl_") for k in query):
            raise RedisURLError("ssl_* options need a rediss:// URL")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if parts.scheme == "unix":
            if not parts.path:
                raise RedisURLError("unix:// URL needs a socket path, e.g. unix:///run/redis/redis.sock")
            return cls(path=unquote(parts.path), db=_db(None, query.get("db")), username=username, password=password)
        if not parts.hostname:
            raise RedisURLError("Redis URL needs a host")
        cert_reqs = query.get("ssl_cert_reqs", "required").lower()
        if cert_reqs not in CERT_REQS:
            raise RedisURLError(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
        return cls(
            host=parts.hostname, port=parts.port or 6379, db=_db(parts.path.strip("/") or None, query.get("db")),
            username=username, password=password, tls=tls, ssl_ca_certs=query.get("ssl_ca_certs") or None,
            ssl_cert_reqs=cert_reqs, ssl_certfile=query.get("ssl_certfile") or None,
            ssl_keyfile=query.get("ssl_keyfile") or None,
            ssl_check_hostname=_flag(query.get("ssl_check_hostname"), default=cert_reqs != "none"),
        )

    def describe(self) -> str:
        """Where, without credentials: for logs and ``/readyz``."""
        where = f"unix://{self.path}" if self.path else f"{'rediss' if self.tls else 'redis'}://{self._netloc()}"
        return f"{where}/{self.db}" if self.db else where

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of a ``rediss://`` URL (``None`` otherwise), as redis-py builds it."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_ca_certs)
        context.check_hostname = self.ssl_check_hostname and self.ssl_cert_reqs != "none"
        context.verify_mode = CERT_REQS[self.ssl_cert_reqs]
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    @property
    def transport(self) -> str:
        """``unix``, ``tls`` or ``tcp``: which kind of connection the settings call for."""
        return "unix" if self.path else "tls" if self.tls else "tcp"

    def redis_py_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for a redis-py connection of kind ``transport``."""
        common: dict[str, Any] = {"db": self.db, "username": self.username, "password": self.password}
        if self.path:
            return {**common, "path": self.path}
        kwargs: dict[str, Any] = {**common, "host": self.host, "port": self.port}
        if self.tls:
            kwargs.update(
                ssl_ca_certs=self.ssl_ca_certs, ssl_cert_reqs=self.ssl_cert_reqs,
                ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
                ssl_check_hostname=self.ssl_check_hostname and self.ssl_cert_reqs != "none",
            )
        return kwargs

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's ``RedisCluster`` (a startup node and how to reach every node)."""
        if self.path:
            raise RedisURLError("a Redis Cluster cannot be reached over a unix socket")
        if self.db:
            raise RedisURLError(f"a Redis Cluster has only database 0 (the URL selects {self.db})")
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "username": self.username,
                                  "password": self.password}
        if self.tls:
            kwargs.update(
                ssl=True, ssl_ca_certs=self.ssl_ca_certs, ssl_cert_reqs=self.ssl_cert_reqs,
                ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile,
                ssl_check_hostname=self.ssl_check_hostname and self.ssl_cert_reqs != "none",
            )
        return kwargs


def _db(from_path: str | None, from_query: str | None) -> int:
    values = {v for v in (from_path, from_query) if v not in (None, "")}
    if len(values) > 1:
        raise RedisURLError(f"the Redis URL names two databases ({' and '.join(sorted(values))})")
    if not values:
        return 0
    value = values.pop()
    if not value.isdigit():
        raise RedisURLError(f"Redis database must be a number, not {value!r}")
    return int(value)


def _flag(value: str | None, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise RedisURLError(f"expected true or false, not {value!r}")
