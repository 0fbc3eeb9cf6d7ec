"""Alert rules: `promtool check rules` and the `promtool test rules` unit tests, plus house conventions.

promtool comes with Debian's `prometheus` package; without it these tests fail (never skip) with the
command that installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.test_dashboard import INSTALL_HINT, check_metric_references, exported_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "observability" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts.test.yml"
README = ROOT / "observability" / "README.md"

EXPECTED_ALERTS = {
    "GatewayDown", "UpstreamErrorRatioHigh", "BreakerOpen", "LatencySLOBurn",
    "BudgetNearlySpent", "BudgetExhausted", "RedisDegraded", "PolicyReloadFailed",
}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(f"promtool not found: {INSTALL_HINT}")
    return path


def _promtool_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules() -> None:
    proc = _promtool_run("check", "rules", RULES.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


def test_promtool_unit_tests() -> None:
    proc = _promtool_run("test", "rules", RULE_TESTS.name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A threshold changed in the rules makes the unit tests fail: they do test the rules."""
    (tmp_path / "alerts.yml").write_text(RULES.read_text().replace(") > 0.05", ") > 0.5"))
    (tmp_path / "alerts.test.yml").write_text(RULE_TESTS.read_text())
    proc = subprocess.run([_promtool(), "test", "rules", "alerts.test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "UpstreamErrorRatioHigh" in proc.stdout + proc.stderr


def test_the_expected_alerts_exist() -> None:
    assert {r["alert"] for r in alert_rules()} == EXPECTED_ALERTS


def test_every_alert_fires_and_stays_quiet_in_the_unit_tests() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text())
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires == EXPECTED_ALERTS, f"no firing case for {EXPECTED_ALERTS - fires}"
    assert quiet == EXPECTED_ALERTS, f"no not-firing case for {EXPECTED_ALERTS - quiet}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_conventions(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    anchor = rule["alert"].lower()
    assert annotations["runbook_url"] == f"observability/README.md#{anchor}"
    readme = README.read_text()
    assert re.search(rf"^#+ {rule['alert']}\s*$", readme, re.M), f"README.md has no runbook section for {rule['alert']}"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_alert_uses_known_metrics_and_labels(rule: dict[str, Any]) -> None:
    assert check_metric_references(rule["expr"], exported_metrics()) == []
