"""The Helm chart is valid: it lints clean, every manifest passes ``kubernetes-validate --strict``, and
bad values are rejected by the values schema and the template guards (see ``tests/deploy_support.py``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.deploy_support import (
    CASES,
    CHART,
    CI_VALUES,
    CRD_KINDS,
    FULLNAME,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    chart_values,
    helm_library,
    manifests,
    require_tool,
    run,
)


@pytest.fixture(scope="module")
def helm() -> ModuleType:
    return helm_library()


def test_ci_values_cover_every_toggle() -> None:
    """Each optional part of the chart is switched on by at least one ci/ values file."""
    text = "\n".join(p.read_text() for p in CI_VALUES)
    for toggle in (
        "autoscaling:",
        "serviceMonitor:",
        "prometheusRule:",
        "grafanaDashboard:",
        "persistence:",
        "existingSecret:",
        "existingConfigMap:",
        "urlSecret:",
        "url:",
        "fromChartFiles: true",
        "reload: false",
        "spec: null",
        "workers: 2",
        "minAvailable:",
    ):
        assert toggle in text, f"no ci/ values file sets {toggle}"
    enabled = [yaml.safe_load(p.read_text()) for p in CI_VALUES]
    assert any(v.get("vllm", {}).get("enabled") for v in enabled)
    assert any(
        v.get("redis", {}).get("enabled") is False
        and not v["redis"].get("url")
        and not v["redis"].get("urlSecret")
        for v in enabled
    ), "no ci/ case runs without Redis"


@pytest.mark.parametrize("case", CASES)
def test_chart_lints_clean(helm: ModuleType, case: str) -> None:
    report = helm.lint(CHART, chart_values(case), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 = warning, 3 = error
    assert not report["errors"] and not problems, json.dumps(report, indent=2)


@pytest.mark.parametrize("case", CASES)
def test_manifests_pass_kubernetes_validate_strict(case: str, tmp_path: Path) -> None:
    validate = require_tool("kubernetes-validate")
    files = []
    for i, doc in enumerate(manifests(case)):
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        path = tmp_path / f"{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        files.append(str(path))
    assert files
    for version in KUBE_VERSIONS:
        result = run([validate, "--strict", "--kubernetes-version", version, *files])
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{case} against Kubernetes {version}:\n{output}"
        assert "Couldn't find schema" not in output, output
        assert output.count("passed for resource") == len(files), output


@pytest.mark.parametrize("case", CASES)
def test_custom_resources(case: str) -> None:
    """What kubernetes-validate cannot check: the Prometheus Operator resources parse and are well formed."""
    for doc in manifests(case):
        if doc["kind"] in {kind for _, kind in CRD_KINDS}:
            assert (doc["apiVersion"], doc["kind"]) in CRD_KINDS
            assert doc["metadata"]["name"].startswith(FULLNAME)
        if doc["kind"] == "ServiceMonitor":
            assert doc["spec"]["jobLabel"] == "app.kubernetes.io/component"
            endpoint = doc["spec"]["endpoints"][0]
            assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
            assert doc["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        if doc["kind"] == "PrometheusRule":
            assert doc["spec"]["groups"] and all(g["rules"] for g in doc["spec"]["groups"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"gateway": {"logLevel": "verbose"}}, "/gateway/logLevel"),
        ({"gateway": {"allowUnauthenticated": "maybe"}}, "/gateway/allowUnauthenticated"),
        ({"gateway": {"workers": 0}}, "/gateway/workers"),
        ({"redis": {"url": "http://redis:6379"}}, "/redis/url"),
        ({"service": {"type": "ExternalName"}}, "/service/type"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        (
            {"autoscaling": {"targetCPUUtilizationPercentage": 150}},
            "/autoscaling/targetCPUUtilizationPercentage",
        ),
        ({"policy": {"active": "../etc/passwd"}}, "/policy/active"),
        (
            {
                "policy": {
                    "spec": {"deployments": {"x": {"type": "openai", "model": "m", "hosting": "cloud"}}}
                }
            },
            "/policy/spec",
        ),
        ({"secrets": {"env": {"not-an-env-name": "x"}}}, "not-an-env-name"),
        ({"vllm": {"gpus": 0}}, "/vllm/gpus"),
        ({"vllm": {"policy": {"attributes": {"api_base": "http://elsewhere"}}}}, "/vllm/policy/attributes"),
        ({"replicas": 3}, "additional properties 'replicas'"),
        ({"redis": {"password": "x"}}, "additional properties 'password'"),
    ],
)
def test_schema_rejects_bad_values(helm: ModuleType, values: dict[str, Any], message: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError, match=re.escape(message)):
        chart.validate_schema(values)


def test_bad_values_file_fails_lint_and_render(helm: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text("replicaCount: two\ngateway:\n  logLevel: loud\nunknownKey: true\n")
    values = helm.values_from_yaml(bad.read_text())
    report = helm.lint(CHART, values, strict=True)
    assert any("/replicaCount" in e for e in report["errors"]), report
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as failure:
        chart.render(values, name=RELEASE)
    for problem in ("/replicaCount", "/gateway/logLevel", "unknownKey"):
        assert problem in str(failure.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"redis": {"enabled": True, "url": "redis://elsewhere:6379/0"}}, "not both"),
        ({"policy": {"active": "missing.yaml"}}, 'policy.active="missing.yaml"'),
        ({"vllm": {"enabled": True}}, "no API keys"),
        (
            {"secrets": {"env": {"OPENAI_API_KEY": "sk-x"}}, "gateway": {"allowUnauthenticated": False}},
            "no API keys",
        ),
        (
            {"autoscaling": {"enabled": True}, "resources": {"requests": {"cpu": None}}},
            "resources.requests.cpu",
        ),
    ],
)
def test_template_guards(helm: ModuleType, values: dict[str, Any], message: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        chart.render(values, name=RELEASE)
