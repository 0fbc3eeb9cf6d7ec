"""What the rendered Helm chart says, for the default values and every ``helm/gateway/ci/*.yaml``: the
gateway pod, Redis, autoscaling, Secrets, vLLM and the policies it generates (``gateway policy check``)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy_support import (
    ALERTS,
    CASES,
    DASHBOARD,
    FULLNAME,
    ROOT,
    chart_values,
    container_env,
    find_doc,
    gateway_pod,
    get_doc,
    manifests,
    policy_files,
    render,
    run,
)


@pytest.mark.parametrize("case", CASES)
def test_gateway_pod_contract(case: str) -> None:
    deployment, container = gateway_pod(case)
    pod = deployment["spec"]["template"]["spec"]
    env = container_env(container)
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
    files = policy_files(case)
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
    service = get_doc(case, "Service", FULLNAME)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_default_values_render_the_demo() -> None:
    _, container = gateway_pod("default")
    env = container_env(container)
    assert env["GATEWAY_POLICY"] == "/etc/gateway/policies/gateway.yaml"
    assert env["GATEWAY_POLICY_RELOAD"] == "true"
    # Simulator-only policy and no secrets: serving without keys is allowed, and NOTES says so.
    assert env["GATEWAY_ALLOW_UNAUTHENTICATED"] == "true"
    assert "GATEWAY_ALLOW_UNAUTHENTICATED=true" in render("default")[1]
    policy = yaml.safe_load(policy_files("default")["gateway.yaml"])
    assert {d["type"] for d in policy["deployments"].values()} == {"simulator"}
    assert find_doc("default", "HorizontalPodAutoscaler", FULLNAME) is None
    assert find_doc("default", "Secret", FULLNAME) is None
    assert "envFrom" not in container
    assert get_doc("default", "Deployment", FULLNAME)["spec"]["replicas"] == 2
    pdb = get_doc("default", "PodDisruptionBudget", FULLNAME)
    assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("case", CASES)
def test_redis_wiring(case: str) -> None:
    values = chart_values(case) or {}
    redis = values.get("redis", {})
    _, container = gateway_pod(case)
    url = container_env(container).get("GATEWAY_REDIS_URL")
    bundled = find_doc(case, "StatefulSet", f"{FULLNAME}-redis")
    if redis.get("url"):
        assert url == redis["url"] and bundled is None
    elif redis.get("urlSecret", {}).get("name"):
        assert url == {"secretKeyRef": {"name": redis["urlSecret"]["name"], "key": redis["urlSecret"]["key"]}}
        assert bundled is None
    elif redis.get("enabled", True):
        service = get_doc(case, "Service", f"{FULLNAME}-redis")
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
        policy = get_doc(case, "NetworkPolicy", f"{FULLNAME}-redis")
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
    values = chart_values(case) or {}
    deployment, _ = gateway_pod(case)
    hpa = find_doc(case, "HorizontalPodAutoscaler", FULLNAME)
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
    pdb = find_doc(case, "PodDisruptionBudget", FULLNAME)
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
    values = chart_values(case) or {}
    secrets = values.get("secrets", {})
    deployment, container = gateway_pod(case)
    annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
    secret = find_doc(case, "Secret", FULLNAME)
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
    values = chart_values(case) or {}
    vllm = find_doc(case, "Deployment", f"{FULLNAME}-vllm")
    if not values.get("vllm", {}).get("enabled"):
        assert vllm is None and find_doc(case, "Service", f"{FULLNAME}-vllm") is None
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
    service = get_doc(case, "Service", f"{FULLNAME}-vllm")
    port = service["spec"]["ports"][0]["port"]
    # The generated policy sends `auto` to the self-hosted model first, at the vLLM Service.
    policy = yaml.safe_load(policy_files(case)["gateway.yaml"])
    deployment = policy["deployments"]["self-hosted"]
    assert deployment["type"] == "vllm" and deployment["hosting"] == "self"
    assert deployment["api_base"] == f"http://{service['metadata']['name']}:{port}/v1"
    served = next(a.split("=", 1)[1] for a in container["args"] if a.startswith("--served-model-name="))
    assert deployment["model"] == served
    assert policy["models"]["auto"]["deployments"][0] == "self-hosted"
    assert policy["models"]["qwen2.5-7b-instruct"]["deployments"] == ["self-hosted"]
    if values["vllm"].get("apiKeySecret", {}).get("name"):
        assert deployment["api_key"] == "${VLLM_API_KEY}"
        assert "secretKeyRef" in container_env(gateway_pod(case)[1])["VLLM_API_KEY"]
    _, gateway = gateway_pod(case)
    assert container_env(gateway)["GATEWAY_ALLOW_UNAUTHENTICATED"] == "false", (
        "a real upstream needs client keys"
    )


def test_policy_sources() -> None:
    files = policy_files("policy-files-values")
    assert set(files) == {"prod.yaml", "canary.yaml"}
    assert (
        container_env(gateway_pod("policy-files-values")[1])["GATEWAY_POLICY"]
        == "/etc/gateway/policies/prod.yaml"
    )
    assert find_doc("existing-configmap-values", "ConfigMap", f"{FULLNAME}-policies") is None
    deployment, _ = gateway_pod("existing-configmap-values")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policies"]["configMap"]["name"] == "gateway-policies-prod"
    # fromChartFiles ships the repository's policies/ (files/policies is a link to it) beside gateway.yaml.
    shipped = policy_files("all-on-values")
    for path in sorted((ROOT / "policies").glob("*.yaml")):
        assert shipped[path.name] == path.read_text(), path.name
    assert "gateway.yaml" in shipped


@pytest.mark.parametrize("case", CASES)
def test_rendered_policies_pass_gateway_policy_check(case: str, tmp_path: Path) -> None:
    """Every policy file the chart puts in its ConfigMap loads in the gateway itself."""
    files = policy_files(case)
    if (chart_values(case) or {}).get("policy", {}).get("existingConfigMap"):
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
    result = run([sys.executable, "-m", "gateway", "policy", "check", *paths], env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_observability_resources_use_the_shared_files() -> None:
    dashboard = get_doc("all-on-values", "ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert dashboard["data"]["gateway-dashboard.json"] == DASHBOARD.read_text(), (
        "the dashboard must ship unchanged"
    )
    rule = get_doc("all-on-values", "PrometheusRule", FULLNAME)
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    monitors = {d["metadata"]["name"] for d in manifests("all-on-values") if d["kind"] == "ServiceMonitor"}
    assert monitors == {FULLNAME, f"{FULLNAME}-vllm"}


def test_metrics_key_and_docs_protection() -> None:
    monitor = get_doc("all-on-values", "ServiceMonitor", FULLNAME)
    auth = monitor["spec"]["endpoints"][0]["authorization"]
    assert auth == {"type": "Bearer", "credentials": {"name": "gateway-metrics", "key": "scrape-key"}}
    assert "authorization" not in get_doc("all-on-values", "ServiceMonitor", f"{FULLNAME}-vllm")["spec"]["endpoints"][0]
    env = container_env(gateway_pod("all-on-values")[1])
    assert env["GATEWAY_METRICS_KEY"]["secretKeyRef"] == {"name": "gateway-metrics", "key": "scrape-key"}
    assert env["GATEWAY_DOCS"] == "off"
    default_env = container_env(gateway_pod("default")[1])
    assert default_env["GATEWAY_DOCS"] == "admin" and "GATEWAY_METRICS_KEY" not in default_env
