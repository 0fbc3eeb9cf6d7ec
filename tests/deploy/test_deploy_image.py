"""The container image: the Dockerfile (parsed by ``dockerfile``, linted by hadolint) and ``.dockerignore``."""

from __future__ import annotations

from typing import Any

from tests.deploy_support import ROOT, require_module, require_tool, run


def _stages() -> list[list[Any]]:
    dockerfile = require_module("dockerfile")
    stages: list[list[Any]] = []
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(command)
    return stages


def test_dockerfile_runtime_stage() -> None:
    stages = _stages()
    assert len(stages) >= 2, "multi-stage: builder and runtime"
    runtime = {c.cmd: c for c in stages[-1]}
    assert runtime["FROM"].value[0] in ("${PYTHON_IMAGE}", "python:3.11-slim")
    assert "PYTHON_IMAGE=python:3.11-slim" in (ROOT / "Dockerfile").read_text()
    assert runtime["USER"].value[0].split(":")[0] == "10001"
    assert runtime["EXPOSE"].value == ("8080",)
    assert runtime["ENTRYPOINT"].value == ("gateway",)
    assert runtime["CMD"].value == ("serve", "--host", "0.0.0.0")
    healthcheck = " ".join(runtime["HEALTHCHECK"].value)
    assert "urllib.request" in healthcheck and "/healthz" in healthcheck and "curl" not in healthcheck
    copies = [c for c in stages[-1] if c.cmd == "COPY"]
    assert any("--from=builder" in c.flags for c in copies)
    runs = " ".join(" ".join(c.value) for c in stages[-1] if c.cmd == "RUN")
    assert "apt-get install" not in runs and "pip install" not in runs, "no build tools in the final image"
    assert "useradd" in runs and "10001" in runs


def test_dockerfile_hadolint() -> None:
    result = run([require_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allowlist: ignore everything, then re-include"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"gateway", "pyproject.toml", "policies"} <= included
    assert not included & {".env", ".git", ".venv", "tests", "helm"}
    assert "**/.env" in lines


def test_builder_installs_the_locked_dependencies() -> None:
    """The image installs exactly the versions of requirements.lock, and the lock covers pyproject.toml."""
    from packaging.requirements import Requirement

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml requirements.lock ./" in dockerfile
    assert "pip wheel --wheel-dir /wheels -r requirements.lock" in dockerfile
    assert "--no-index --find-links /wheels -r requirements.lock" in dockerfile
    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            req = Requirement(line)
            locked[req.name.lower().replace("_", "-")] = req
    assert all(str(r.specifier).startswith("==") for r in locked.values()), "every line pinned"
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in declared:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"python_version": "3.11", "sys_platform": "linux"}):
            continue
        name = req.name.lower().replace("_", "-").replace(".", "-")
        assert name in locked, f"{req.name} is not in requirements.lock: run .ci/lock-dependencies.sh"
        version = str(locked[name].specifier).removeprefix("==")
        assert req.specifier.contains(version), f"{name} {version} is outside {req.specifier}"
