"""The operator docs say what the code does: settings, alerts, readiness, shipped example files."""

from __future__ import annotations

import re

import yaml

from gateway.settings import Settings
from tests import servers

ROOT = servers.ROOT
DOCS = {name: (ROOT / name).read_text() for name in ("README.md", "docs/operations.md", "docs/deployment.md")}
SETTINGS = {f"GATEWAY_{name.upper()}" for name in Settings.model_fields if name != "metrics_dir"}
NOT_SETTINGS = {"GATEWAY_PUBLISH_ADDRESS"}  # the compose file's own variable (where the port is published)


def test_every_setting_is_in_the_readme() -> None:
    """(docs/settings.md lists them all with their defaults; the README's table must not fall behind.)"""
    missing = sorted(v for v in SETTINGS if v not in DOCS["README.md"])
    assert not missing, f"README.md does not document {missing}"


def test_every_documented_variable_is_read() -> None:
    named = {v for text in DOCS.values() for v in re.findall(r"GATEWAY_[A-Z_]+[A-Z]", text)}
    assert not named - SETTINGS - NOT_SETTINGS, "documented but never read"


def test_alert_names_in_the_operations_guide_exist() -> None:
    rules = yaml.safe_load((ROOT / "observability" / "prometheus" / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    named = set(re.findall(r"alert `(\w+)`", DOCS["docs/operations.md"]))
    assert named and named <= alerts, named - alerts


def test_readiness_with_redis_down_is_described_as_it_is() -> None:
    """/readyz answers 200 with redis degraded (tests/test_gateway_state.py checks the behaviour)."""
    for name, text in DOCS.items():
        assert "not ready while Redis" not in text, name
    assert "stays **200**" in DOCS["docs/operations.md"] and "stays\nready (200" in DOCS["docs/deployment.md"]
