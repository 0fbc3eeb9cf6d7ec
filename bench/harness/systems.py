"""The systems under test and how each one starts.

Every system serves the same two client requests (a plain and a streamed chat completion) and forwards
them to the same nginx mock. Clients of all systems send the same bodies and the same headers
(including the gateway's API key, which the others ignore).
"""

from __future__ import annotations

import os
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import bodies, nginx
from harness.procs import Server, taskset

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
API_KEY = "sk-bench-support"
"""The key of the `support` team in policies/everything.yaml (the other systems ignore it)."""
LITELLM_MASTER_KEY = "sk-bench-litellm-5f0c8a3e9b7d41c6a2e8f1d4b6c9a7e3d2f5b8c1a4e7d0f3b6a9c2e5f8d1b4a7"
"""LiteLLM refuses to start without a master key; its clients send this one instead."""

KINDS = ("floor", "nginx", "pypipe", "gateway-minimal", "gateway-everything", "litellm")
PACED_ONLY = ("pypipe",)
"""Kinds measured in the paced-stream phase only (the standard phase has the floor and nginx for this)."""
LABELS = {
    "floor": "floor: wrk → mock (no proxy)",
    "nginx": "nginx proxy_pass (C reference)",
    "pypipe": "uvloop TCP pipe (Python reference)",
    "gateway-minimal": "gateway, minimal policy",
    "gateway-everything": "gateway, everything on",
    "litellm": "LiteLLM proxy",
}


@dataclass(frozen=True)
class Target:
    """Where the load goes for one system: port, the two request paths and the two bodies."""

    port: int
    json_path: str
    sse_path: str
    json_body: str
    sse_body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class System:
    kind: str
    workers: int

    @property
    def key(self) -> str:
        return self.kind if self.kind == "floor" else f"{self.kind}-w{self.workers}"

    @property
    def label(self) -> str:
        return LABELS[self.kind] + ("" if self.kind == "floor" else f", {self.workers} worker{'s' * (self.workers > 1)}")

    def target(self, port: int) -> Target:
        key = LITELLM_MASTER_KEY if self.kind == "litellm" else API_KEY
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        if self.kind in ("floor", "nginx", "pypipe"):
            # Path-based: the mock (and a pass-through in front of it) pick the answer by path.
            return Target(port, nginx.JSON_PATH, nginx.SSE_PATH, bodies.request_body(bodies.JSON_MODEL, False).decode(),
                          bodies.request_body(bodies.JSON_MODEL, True).decode(), headers)
        path = "/v1/chat/completions"
        return Target(port, path, path, bodies.request_body(bodies.JSON_MODEL, False).decode(),
                      bodies.request_body(bodies.SSE_MODEL, True).decode(), headers)


@dataclass
class Context:
    """What starting a system needs to know about the run."""

    run_dir: Path
    mock_port: int
    redis_url: str
    sut_cpus: set[int] | None
    litellm_bin: Path | None = None
    open_files: int | None = None
    """The open-files limit of the system's processes (``None``: inherited)."""
    max_connections: int | None = None
    """Client connections the system must accept (raises the gateway's cap and nginx's
    ``worker_connections`` above their defaults when set)."""

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.mock_port}"


def start(system: System, ctx: Context, port: int) -> tuple[Server, str]:
    """Start the system; return it and the URL that tells it is ready."""
    if system.kind == "nginx":
        # A relayed stream holds two connections; leave room for the upstream's keep-alive pool.
        connections = max(16384, 2 * (ctx.max_connections or 0) + 1024)
        if ctx.open_files:
            connections = min(connections, ctx.open_files)  # more than it may open only makes nginx warn
        config = nginx.proxy_config(ctx.run_dir, port, ctx.mock_port, system.workers, connections)
        return (nginx.start("proxy", config, ctx.run_dir, ctx.sut_cpus, ctx.open_files),
                f"http://127.0.0.1:{port}/healthz")
    if system.kind == "pypipe":
        argv = [*taskset(ctx.sut_cpus), sys.executable, str(BENCH / "harness" / "tcp_pipe.py"), str(port),
                str(ctx.mock_port)]
        return (Server(system.key, argv, ctx.run_dir / f"{system.key}.log", open_files=ctx.open_files),
                f"http://127.0.0.1:{port}/healthz")
    if system.kind.startswith("gateway-"):
        return _gateway(system, ctx, port), f"http://127.0.0.1:{port}/healthz"
    if system.kind == "litellm":
        return _litellm(system, ctx, port), f"http://127.0.0.1:{port}/health/liveliness"
    raise ValueError(f"{system.kind} is not started by the harness")


def gateway_policy(kind: str) -> Path:
    return BENCH / "policies" / f"{'minimal' if kind == 'gateway-minimal' else 'everything'}.yaml"


def gateway_env(kind: str, ctx: Context) -> dict[str, str | None]:
    """The gateway's environment for ``kind`` (``gateway-minimal`` or ``gateway-everything``)."""
    policy = "minimal" if kind == "gateway-minimal" else "everything"
    env: dict[str, str | None] = {"BENCH_UPSTREAM": ctx.upstream, "GATEWAY_LOG_LEVEL": "warning",
                                  "PYTHONUNBUFFERED": "1"}
    for name in os.environ:
        if name.startswith("GATEWAY_") or name == "PROMETHEUS_MULTIPROC_DIR":
            env[name] = None  # nothing inherited from the caller's shell
    if policy == "minimal":
        env["GATEWAY_ACCESS_LOG"] = "false"
    else:
        env["GATEWAY_REDIS_URL"] = ctx.redis_url
        env["GATEWAY_ACCESS_LOG"] = "true"
    if ctx.max_connections:
        env["GATEWAY_MAX_CONNECTIONS"] = str(ctx.max_connections + 1024)
    return env


def _gateway(system: System, ctx: Context, port: int) -> Server:
    gateway = Path(sys.executable).parent / "gateway"
    argv = [*taskset(ctx.sut_cpus), str(gateway), "serve", "--policy", str(gateway_policy(system.kind)),
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(system.workers)]
    return Server(system.key, argv, ctx.run_dir / f"{system.key}.log", env=gateway_env(system.kind, ctx),
                  cwd=ctx.run_dir, open_files=ctx.open_files)


def _litellm(system: System, ctx: Context, port: int) -> Server:
    if ctx.litellm_bin is None:
        raise RuntimeError("LiteLLM is not installed")
    template = string.Template((BENCH / "litellm-config.yaml").read_text())
    config = ctx.run_dir / "litellm-config.yaml"
    config.write_text(template.substitute(BENCH_UPSTREAM=ctx.upstream, BENCH_MASTER_KEY=LITELLM_MASTER_KEY))
    env: dict[str, str | None] = {
        # No network here: use the bundled price map, no telemetry, quiet logs.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_MODE": "PRODUCTION",
        "LITELLM_TELEMETRY": "False", "DISABLE_ADMIN_UI": "True", "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": None, "REDIS_URL": None, "REDIS_HOST": None,
    }
    argv = [*taskset(ctx.sut_cpus), str(ctx.litellm_bin), "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--num_workers", str(system.workers)]
    return Server(system.key, argv, ctx.run_dir / f"{system.key}.log", env={**env, "HOME": os.environ.get("HOME", "/root")},
                  cwd=ctx.run_dir, open_files=ctx.open_files)
