"""API key authentication: Bearer keys are hashed (SHA-256) and looked up among the policy's keys."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.core.errors import AuthenticationFailed
from gateway.policy.loader import PolicyError, PolicyIssue
from gateway.policy.models import Policy
from gateway.routing.runtime import PolicySnapshot

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Identity:
    team: str
    key: str
    admin: bool = False


_OPEN = Identity("default", ANONYMOUS)


def require_keys_off_loopback(policy: Policy, path: str, *, host: str, loopback: bool,
                              allow_unauthenticated: bool) -> None:
    """Refuse a policy that would leave a gateway bound beyond loopback open to anyone.

    Checked wherever a policy is installed (start-up, file poll, SIGHUP, ``POST /v1/gateway/reload``),
    so a reload can never do what start-up refuses; the rejected policy is reported like any invalid
    file and the last good one stays active."""
    if policy.keys or loopback or allow_unauthenticated:
        return
    raise PolicyError([PolicyIssue(
        path, 1, 1,
        f"keys: the policy defines no API keys, which would let anyone who can reach {host} use the gateway; "
        "define `keys`, bind a loopback address, or set GATEWAY_ALLOW_UNAUTHENTICATED=true to accept that risk",
    )])


def credentials(headers: Mapping[str, str]) -> str | None:
    """The caller's key as an ``Authorization`` value: the header itself, else an ``x-api-key`` (how
    Anthropic's SDKs and the coding agents built on them send it) read as a bearer key."""
    authorization = headers.get("authorization")
    if authorization:
        return authorization
    api_key = headers.get("x-api-key")
    return f"Bearer {api_key}" if api_key else None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def authenticate(snapshot: PolicySnapshot, authorization: str | None, admin_key: str | None = None) -> Identity:
    """The caller's identity. With no keys in the policy every caller is the anonymous default team
    (the CLI only allows that on loopback unless told otherwise)."""
    keys = snapshot.keys_by_hash
    token = bearer_token(authorization)
    # compare_digest on str only takes ASCII; bytes compare any header value in constant time.
    if admin_key and token and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), admin_key.encode()):
        return Identity("default", "admin", admin=True)
    if not keys:
        return _OPEN
    if token is None:
        raise AuthenticationFailed(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    key = keys.get(hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest())
    if key is None:
        raise AuthenticationFailed("Incorrect API key provided. Ask your gateway administrator for a valid key.")
    return Identity(key.team, key.name, key.admin)
