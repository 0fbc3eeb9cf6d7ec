"""Process settings: command-line flags over ``GATEWAY_*`` environment variables over defaults.

Validated once at start; a bad value stops the process with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

PACKAGED_DEFAULT_POLICY = Path(__file__).parent / "default_policy.yaml"


def default_policy_path() -> str:
    """``policies/default.yaml`` under the working directory, else the copy shipped in the package."""
    local = Path("policies/default.yaml")
    return str(local if local.is_file() else PACKAGED_DEFAULT_POLICY)


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    policy: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    redis_url: str | None = None
    allow_unauthenticated: bool = False
    """Serve without API keys on a non-loopback address (keys are never required on loopback)."""
    admin_key: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    access_log: bool = True
    log_level: str = "info"
    policy_reload: bool = True
    policy_reload_interval: float = 2.0
    redis_timeout: float = 0.25
    shutdown_grace: float = 30.0
    metrics_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"GATEWAY_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, raw, f.type)
        if "metrics_dir" not in values and env.get("PROMETHEUS_MULTIPROC_DIR"):
            values["metrics_dir"] = env["PROMETHEUS_MULTIPROC_DIR"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if not settings.policy:
            settings = replace(settings, policy=default_policy_path())
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"GATEWAY_PORT must be 1-65535, got {self.port}")
        if self.workers < 1:
            raise SettingsError(f"GATEWAY_WORKERS must be at least 1, got {self.workers}")
        if self.max_body_bytes < 1024:
            raise SettingsError("GATEWAY_MAX_BODY_BYTES must be at least 1024")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("GATEWAY_REDIS_URL must start with redis://, rediss:// or unix://")

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127.")


def _coerce(name: str, raw: str, annotation: Any) -> Any:
    kind = str(annotation)
    try:
        if "bool" in kind:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if "int" in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
    except ValueError:
        raise SettingsError(f"GATEWAY_{name.upper()}: cannot read {raw!r} as {kind.replace(' | None', '')}") from None
    return raw
