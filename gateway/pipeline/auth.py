"""API key authentication: Bearer keys are hashed (SHA-256) and looked up among the policy's keys."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from gateway.core.errors import AuthenticationFailed
from gateway.routing.runtime import PolicySnapshot

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Identity:
    team: str
    key: str
    admin: bool = False


_OPEN = Identity("default", ANONYMOUS)


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
    if admin_key and token and hmac.compare_digest(token, admin_key):
        return Identity("default", "admin", admin=True)
    if not keys:
        return _OPEN
    if token is None:
        raise AuthenticationFailed(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    key = keys.get(hashlib.sha256(token.encode()).hexdigest())
    if key is None:
        raise AuthenticationFailed("Incorrect API key provided. Ask your gateway administrator for a valid key.")
    return Identity(key.team, key.name, key.admin)
