"""The Grafana dashboard: valid against Grafana's schema, consistent, and querying metrics that exist.

Schema validation uses Grafana's own published types (npm ``@grafana/schema``) through the TypeScript
compiler (``observability/schema-check/check-dashboard.mjs``); PromQL is parsed by ``promtool`` (each
expression wrapped in a recording rule) and evaluated for real against Prometheus in
``test_prometheus_integration.py``. Missing tools fail the test with the command that installs them.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gateway.metrics.registry import GatewayMetrics
from gateway.metrics.shadow import ShadowMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "observability" / "grafana" / "gateway-dashboard.json"
SCHEMA_CHECK = ROOT / "observability" / "schema-check"
INSTALL_HINT = "run `bash .ci/install-observability-tools.sh` (Debian prometheus, npm ci in observability/schema-check)"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Grafana's built-in variables, replaced by fixed values wherever a query must be run or parsed.
GRAFANA_BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
DASHBOARD_VARIABLES = ("deployment", "team")
# Labels Prometheus adds at scrape time, and the histogram bucket label.
SCRAPE_LABELS = {"job", "instance", "le"}


# ---------------------------------------------------------------- helpers shared with the integration test
def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, nested row panels too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of every panel."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def substitute(expr: str, value: str = ".*") -> str:
    """A dashboard expression as Prometheus would receive it with every variable set to All."""
    for name, replacement in GRAFANA_BUILTINS.items():
        expr = expr.replace(name, replacement)
    for name in DASHBOARD_VARIABLES:
        expr = re.sub(rf"\$\{{{name}(?::\w+)?\}}|\${name}\b|\[\[{name}\]\]", value, expr)
    return expr


def target_id(panel: dict[str, Any], target: dict[str, Any]) -> str:
    return f"panel{panel['id']}-{target['refId']}:{panel['title']}"


def exported_metrics() -> dict[str, set[str]]:
    """Every series name the gateway can export (``gateway_requests_total``, ``..._bucket``), with its labels."""
    registry = CollectorRegistry()
    exported = {**vars(GatewayMetrics(registry)), **{f"shadow.{k}": v for k, v in vars(ShadowMetrics(registry)).items()}}
    names: dict[str, set[str]] = {}
    for metric in exported.values():
        if not hasattr(metric, "_labelnames"):
            continue
        labels = set(metric._labelnames)
        base = metric._name
        kind = metric._type
        if kind == "counter":
            names[f"{base}_total"] = labels
        elif kind == "histogram":
            names[f"{base}_bucket"] = labels | {"le"}
            names[f"{base}_sum"] = labels
            names[f"{base}_count"] = labels
        else:
            names[base] = labels
    return names


_SELECTOR = re.compile(r"\b(gateway_\w+|up)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def check_metric_references(expr: str, known: dict[str, set[str]]) -> list[str]:
    """Problems with the metric names and labels an expression uses (empty when all exist)."""
    problems = []
    used: set[str] = set()
    for name, matchers in _SELECTOR.findall(expr):
        if name == "up":
            used |= {"job", "instance"}
            continue
        if name not in known:
            problems.append(f"unknown metric {name}")
            continue
        used |= known[name]
        for label in _MATCHER.findall(matchers or ""):
            if label not in known[name] | SCRAPE_LABELS:
                problems.append(f"{name} has no label {label!r}")
    for group in _GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            if label not in used | SCRAPE_LABELS:
                problems.append(f"label {label!r} is on none of the metrics used")
    return problems


def promtool_parse(exprs: dict[str, str], tmp_path: Path) -> str:
    """Parse PromQL with promtool by wrapping each expression in a recording rule; returns promtool's output."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(f"promtool not found: {INSTALL_HINT}")
    rules = [{"record": f"dashboard:expr_{i}", "expr": expr} for i, expr in enumerate(exprs.values())]
    path = tmp_path / "parse.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "parse", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    names = {f"dashboard:expr_{i}": key for i, key in enumerate(exprs)}
    output = proc.stdout + proc.stderr
    for record, key in names.items():
        output = output.replace(record, f"{record} ({key})")
    return output if proc.returncode else ""


# ---------------------------------------------------------------- schema
def _run_schema_check(*paths: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node not found (Node.js 18+ is needed to validate the dashboard): {INSTALL_HINT}")
    if not (SCHEMA_CHECK / "node_modules" / "@grafana" / "schema").is_dir():
        pytest.fail(f"observability/schema-check/node_modules is missing: {INSTALL_HINT}")
    return subprocess.run([node, str(SCHEMA_CHECK / "check-dashboard.mjs"), *map(str, paths)],
                          capture_output=True, text=True, timeout=180)


def test_dashboard_is_valid_against_grafana_schema() -> None:
    proc = _run_schema_check(DASHBOARD)
    assert proc.returncode == 0, f"schema errors:\n{proc.stderr}{proc.stdout}"
    assert "valid against @grafana/schema" in proc.stdout


def _first_panel(d: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(p for p in panels(d) if p["type"] == kind)


BROKEN = {
    "misspelt field config key": lambda d: _first_panel(d, "timeseries")["fieldConfig"]["defaults"].update(unitt="s"),
    "unknown legend mode": lambda d: _first_panel(d, "timeseries")["options"]["legend"].update(displayMode="lists"),
    "string where a number belongs": lambda d: _first_panel(d, "stat")["gridPos"].update(h="8"),
    "unknown stat color mode": lambda d: _first_panel(d, "stat")["options"].update(colorMode="bright"),
    "unknown draw style": lambda d: _first_panel(d, "timeseries")["fieldConfig"]["defaults"]["custom"].update(drawStyle="dots"),
    "unknown panel type": lambda d: _first_panel(d, "timeseries").update(type="timeserie"),
    "target without expr": lambda d: _first_panel(d, "timeseries")["targets"][0].pop("expr"),
    "unknown variable type": lambda d: d["templating"]["list"][1].update(type="querry"),
    "row without collapsed": lambda d: _first_panel(d, "row").pop("collapsed"),
    "no schemaVersion": lambda d: d.pop("schemaVersion"),
}


def test_schema_check_rejects_broken_dashboards(tmp_path: Path) -> None:
    """The validator is not a rubber stamp: each of these mistakes is reported (one compiler run for all)."""
    paths = {}
    for i, (name, breaks) in enumerate(BROKEN.items()):
        broken = copy.deepcopy(load_dashboard())
        breaks(broken)
        paths[name] = tmp_path / f"broken{i}.json"
        paths[name].write_text(json.dumps(broken))
    proc = _run_schema_check(*paths.values())
    assert proc.returncode == 1
    missed = [name for name, path in paths.items() if f"{path}: valid" in proc.stdout or f"{path}: " not in proc.stderr]
    assert not missed, f"mistakes the schema check did not catch: {missed}\n{proc.stdout}"


# ---------------------------------------------------------------- structure
def test_schema_version_and_identity() -> None:
    d = load_dashboard()
    assert d["schemaVersion"] >= 39
    assert d["uid"] and len(d["uid"]) <= 40
    assert d["title"]
    assert d.get("id") is None, "an exported dashboard carries no instance-specific id"


def test_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in panels(load_dashboard())]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(i for i in ids if ids.count(i) > 1)}"


def test_panels_fit_the_grid_without_overlapping() -> None:
    taken: dict[tuple[int, int], int] = {}
    for panel in panels(load_dashboard()):
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, f"panel {panel['id']} sticks out of the 24-column grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in taken, f"panels {taken[(x, y)]} and {panel['id']} overlap at {(x, y)}"
                taken[(x, y)] = panel["id"]


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    d = load_dashboard()
    for panel in panels(d):
        if panel["type"] == "row":
            continue
        assert panel.get("datasource") == DATASOURCE, f"panel {panel['id']} {panel['title']!r}"
        assert panel.get("targets"), f"panel {panel['id']} {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE, target_id(panel, target)
            assert target.get("expr", "").strip(), target_id(panel, target)
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"panel {panel['id']} repeats a refId"


def test_template_variables() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    for name in DASHBOARD_VARIABLES:
        var = variables[name]
        assert var["type"] == "query"
        assert var["datasource"] == DATASOURCE
        assert var["multi"] is True and var["includeAll"] is True
        assert var["allValue"] == ".*", "All must be a regex so that `=~` matches every value"
        assert var["query"]["query"] == f"label_values(gateway_requests_total, {name})"


def test_variables_are_used_only_as_regex_matchers() -> None:
    exprs = [t["expr"] for _, t in targets(load_dashboard())]
    for name in DASHBOARD_VARIABLES:
        uses = [e for e in exprs if f"${name}" in e]
        assert uses, f"${name} is used by no query"
        for expr in uses:
            bare = re.sub(rf'\w+=~"\${name}"', "", expr)
            assert f"${name}" not in bare, f"${name} must appear only as label=~\"${name}\" (multi-value): {expr}"


def test_every_query_uses_known_metrics_and_labels() -> None:
    known = exported_metrics()
    problems = {}
    for panel, target in targets(load_dashboard()):
        found = check_metric_references(target["expr"], known)
        if found:
            problems[target_id(panel, target)] = found
    assert not problems, json.dumps(problems, indent=2)


def test_every_exported_metric_is_on_the_dashboard() -> None:
    text = "\n".join(t["expr"] for _, t in targets(load_dashboard()))
    used = {name for name in exported_metrics() if re.search(rf"\b{name}\b", text)}
    bases = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    missing = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exported_metrics()} - bases
    assert not missing, f"metrics defined in gateway/metrics/registry.py but shown nowhere: {sorted(missing)}"


def test_reference_check_catches_mistakes() -> None:
    known = exported_metrics()
    assert check_metric_references('sum(rate(gateway_request_total[1m]))', known) == ["unknown metric gateway_request_total"]
    assert check_metric_references('gateway_cost_usd_total{tenant="a"}', known) == ["gateway_cost_usd_total has no label 'tenant'"]
    assert check_metric_references("sum by (fault) (rate(gateway_requests_total[1m]))", known)
    assert check_metric_references("rate(gateway_ttft_bucket[1m])", known) == ["unknown metric gateway_ttft_bucket"]
    assert check_metric_references(
        'histogram_quantile(0.9, sum by (le, deployment) (rate(gateway_time_to_first_token_seconds_bucket{model="a"}[1m])))', known
    ) == []


def test_every_expression_parses(tmp_path: Path) -> None:
    exprs = {target_id(p, t): substitute(t["expr"]) for p, t in targets(load_dashboard())}
    for name in DASHBOARD_VARIABLES:
        exprs[f"variable {name}"] = f"count by ({name}) (gateway_requests_total)"
    assert promtool_parse(exprs, tmp_path) == ""


def test_promtool_parse_reports_bad_promql(tmp_path: Path) -> None:
    output = promtool_parse({"good": "sum(rate(gateway_requests_total[1m]))",
                             "bad": "sum by (le (rate(gateway_requests_total[1m]))"}, tmp_path)
    assert "(bad)" in output and "(good)" not in output
