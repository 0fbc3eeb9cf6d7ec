"""One dashboard, one rules file: the chart links to ``observability/`` and ``policies/`` instead of keeping
copies, packages them as files, and the shared files are valid."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.deploy_support import ALERTS, CHART, DASHBOARD, ROOT, helm_library


@pytest.fixture(scope="module")
def helm() -> ModuleType:
    return helm_library()


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
