"""Process settings: command-line flags over ``GATEWAY_*`` environment variables over defaults.

One typed model, validated once at start; a bad value stops the process with a message naming the
variable. Every variable is documented here, in its field's description: ``gateway settings`` prints
the reference (``docs/settings.md`` is its output, kept equal by a test).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PACKAGED_DEFAULT_POLICY = Path(__file__).parent / "default_policy.yaml"


def default_policy_path() -> str:
    """``policies/default.yaml`` under the working directory, else the copy shipped in the package."""
    local = Path("policies/default.yaml")
    return str(local if local.is_file() else PACKAGED_DEFAULT_POLICY)


class SettingsError(ValueError):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: str = Field(default="", description="Policy file (default: `policies/default.yaml` under the working "
                        "directory, else the embedded default shipped in the package).")
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8080, gt=0, lt=65536, description="Port to listen on.")
    workers: int = Field(default=1, ge=1, description="Worker processes (metrics aggregate across them).")
    redis_url: str | None = Field(default=None, description="Shared state (cache, limits, budgets, spend, live "
                                  "statistics) in Redis: `redis://`, `rediss://` or `unix://`; unset: in-process.")
    redis_timeout: float = Field(default=0.25, gt=0, description="Seconds each Redis call may take before the "
                                 "gateway carries on without it.")
    allow_unauthenticated: bool = Field(default=False, description="Serve without API keys on a non-loopback "
                                        "address (keys are never required on loopback).")
    admin_key: str | None = Field(default=None, description="Bearer key for the admin endpoints (spend, reload); "
                                  "policy keys with `admin: true` work too.")
    metrics_key: str | None = Field(default=None, description="When set, `/metrics` (which carries per-team "
                                    "spend) needs this bearer key or an admin key.")
    docs: Literal["open", "admin", "off"] = Field(default="open", description="Who may read `/docs` and "
                                                  "`/openapi.json`: `open`, `admin` (admin keys only) or `off`.")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Request bodies above this get 413.")
    header_timeout: float = Field(default=10.0, gt=0, description="Seconds a client has to send a request head; "
                                  "then the connection is closed.")
    body_timeout: float = Field(default=60.0, gt=0, description="Seconds a client has to send a request body; "
                                "then 408.")
    max_connections: int = Field(default=10_000, ge=16, description="Connections per worker; beyond it the oldest "
                                 "connection still sending its request is closed (lowered to half the open-files "
                                 "limit, which is raised to its hard limit at start).")
    access_log: bool = Field(default=True, description="One JSON line per request on stdout (never prompt text).")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(default="info", description="Log level.")
    policy_reload: bool = Field(default=True, description="Poll the policy file and hot-reload it when it changes "
                                "(SIGHUP and `POST /v1/gateway/reload` reload it at once either way).")
    policy_reload_interval: float = Field(default=2.0, gt=0, description="Seconds between polls of the policy file.")
    shutdown_grace: float = Field(default=30.0, ge=0, description="Seconds in-flight requests and streams may take to "
                                  "finish after SIGTERM.")
    metrics_dir: str | None = Field(default=None, description="Directory for multi-worker metrics "
                                    "(`PROMETHEUS_MULTIPROC_DIR` is read too); set automatically when workers > 1.")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``GATEWAY_<NAME>`` variables (``env``, default the process environment), with
        ``overrides`` (command-line flags; ``None`` means "not given") on top."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            name: env[variable(name)] for name in cls.model_fields if env.get(variable(name), "") != ""
        }
        if "metrics_dir" not in values and env.get("PROMETHEUS_MULTIPROC_DIR"):
            values["metrics_dir"] = env["PROMETHEUS_MULTIPROC_DIR"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError("; ".join(_describe(error) for error in exc.errors())) from None
        if not settings.policy:
            settings = settings.model_copy(update={"policy": default_policy_path()})
        return settings

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host.startswith("127.")


def variable(name: str) -> str:
    """The environment variable of a setting."""
    return f"GATEWAY_{name.upper()}"


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    name = variable(where) if where in Settings.model_fields else where
    given = error.get("input")
    return f"{name}: {error['msg'].removeprefix('Value error, ')} (got {given!r})"


def reference() -> str:
    """The settings reference (Markdown): every variable, its default and what it does."""
    lines = [
        "# Settings reference",
        "",
        "<!-- Generated by `gateway settings`; do not edit by hand (a test compares). -->",
        "",
        "Environment variables of `gateway serve`; its flags (`--policy`, `--host`, `--port`, `--workers`,",
        "`--redis-url`, `--allow-unauthenticated`) win over them.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default in (None, "") else f"`{field.default}`"
        lines.append(f"| `{variable(name)}` | {default} | {(field.description or '').replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"
