"""The price map: vendor model prices the gateway uses when a policy gives none, as a versioned file.

``price_map.json`` beside this module is part of the repository and of the package: the prices a
deployment is charged at change only when that file changes, in a reviewed commit, never because a
dependency was upgraded or a file inside it moved. It is a trimmed copy of litellm's bundled map
(chat, completion, responses and embedding models; input and output USD per token).

Refresh it from the installed litellm (offline: reads litellm's bundled JSON, imports nothing)::

    python -m gateway.policy.price_map refresh            # rewrites gateway/policy/price_map.json
    python -m gateway.policy.price_map refresh --from other_map.json

then review the diff (a price that moved is a cost change for every team using that model).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

PATH = Path(__file__).with_name("price_map.json")
_MODES = ("chat", "completion", "responses", "embedding")
_FIELDS = ("input_cost_per_token", "output_cost_per_token", "litellm_provider", "mode")


@lru_cache(maxsize=1)
def load() -> dict[str, dict[str, Any]]:
    """Model name → its entry (``input_cost_per_token``, ``output_cost_per_token``, ...)."""
    models: dict[str, dict[str, Any]] = json.loads(PATH.read_text(encoding="utf-8"))["models"]
    return models


def _litellm_map() -> Path:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("litellm is not installed: pass --from PATH")
    return Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"


def trimmed(source: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {f: entry[f] for f in _FIELDS if f in entry}
        for name, entry in sorted(source.items())
        if isinstance(entry, dict) and entry.get("input_cost_per_token") is not None and entry.get("mode") in _MODES
    }


def render(models: dict[str, dict[str, Any]], source: str) -> str:
    """One model per line, sorted: a refresh shows in review as the lines whose prices moved."""
    lines = [f"  {json.dumps(name)}: {json.dumps(entry, sort_keys=True)}" for name, entry in models.items()]
    header = json.dumps({"source": source, "refreshed": datetime.date.today().isoformat()})[1:-1]
    return "{" + header + ',\n "models": {\n' + ",\n".join(lines) + "\n }\n}\n"


def refresh(source: Path | None = None, target: Path = PATH) -> int:
    path = source or _litellm_map()
    models = trimmed(json.loads(path.read_text(encoding="utf-8")))
    if source is None:
        origin = f"litellm {importlib.metadata.version('litellm')} {path.name}"
    else:
        origin = path.name
    target.write_text(render(models, origin), encoding="utf-8")
    return len(models)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.policy.price_map", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("refresh", help="rewrite price_map.json from litellm's bundled map (or --from PATH)")
    cmd.add_argument("--from", dest="source", type=Path, default=None)
    cmd.add_argument("--to", dest="target", type=Path, default=PATH)
    args = parser.parse_args(argv)
    count = refresh(args.source, args.target)
    print(f"wrote {count} model prices to {args.target}")


if __name__ == "__main__":
    main()
