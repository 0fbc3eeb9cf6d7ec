"""LiteLLM proxy in its own virtual environment (``bench/.litellm-venv``), installed from PyPI on first use.

Kept apart from the project's ``.venv`` so the version measured is whatever ``pip install
'litellm[proxy]'`` resolves to, with the proxy's own dependencies, and the gateway's pins stay out of it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent.parent / ".litellm-venv"


def binary() -> Path:
    return VENV / "bin" / "litellm"


def ensure(spec: str = "litellm[proxy]") -> Path:
    """The ``litellm`` command, installing it first if needed (a few minutes, once)."""
    if not binary().exists():
        print(f"bench: installing {spec} into {VENV} (once; takes a few minutes)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, spec], check=True)
    return binary()


def version() -> str:
    out = subprocess.run([str(VENV / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"
