"""The import direction of docs/architecture.md, and each third-party library in its one corner, as a test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gateway"

# layer → layers it may import (imports point one way: app → api → pipeline → shadow → routing → providers/state/metrics
# → policy → core;
# protocols (sans-io wire formats) import only core)
ALLOWED = {
    "core": {"core"},
    "policy": {"core", "policy"},
    "simulator": {"simulator"},
    "providers": {"core", "policy", "providers", "simulator"},
    "state": {"core", "policy", "state"},
    "metrics": {"core", "policy", "metrics"},
    "routing": {"core", "policy", "providers", "state", "metrics", "routing"},
    "protocols": {"core", "protocols"},
    "shadow": {"core", "policy", "providers", "state", "metrics", "routing", "shadow"},
    "pipeline": {"core", "policy", "providers", "state", "metrics", "routing", "protocols", "shadow", "pipeline"},
    "api": {"core", "policy", "providers", "state", "metrics", "routing", "protocols", "shadow", "pipeline", "api"},
}
# third-party library → the only modules (path prefixes under gateway/) that may import it
CORNERS = {
    "litellm": ("providers/litellm_runtime.py",),
    "redis": ("state/redis_backend.py",),
    "hiredis": ("state/resp.py",),
    "aiohttp": ("providers/transport.py", "providers/litellm_errors.py", "simulator/server.py"),
    "prometheus_client": ("metrics/", "app.py"),  # app.py: the composition root creates the registry
    "tenacity": ("routing/executor.py",),
    "fastapi": ("api/", "app.py"),
    "starlette": ("api/", "pipeline/", "app.py", "server.py"),
    "httpx": ("providers/litellm_errors.py", "providers/litellm_egress.py"),
    "uvicorn": ("cli.py", "server_protocol.py"),
    "jsonschema": ("shadow/json_check.py",),
    "referencing": ("shadow/json_check.py",),
    "regex": ("shadow/",),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_imports_point_one_way(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    layer = rel.parts[0] if len(rel.parts) > 1 else None
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "gateway" and layer in ALLOWED:
            target = name.split(".")[1] if "." in name else ""
            assert target in ALLOWED[layer], f"{rel} imports {name}: {layer} may not import {target}"
        if top in CORNERS:
            assert str(rel).startswith(CORNERS[top]), f"{rel} imports {top}, which belongs in {CORNERS[top]}"


def test_no_grab_bag_modules() -> None:
    assert not [p for p in MODULES if p.stem in ("utils", "helpers", "misc", "common")]

