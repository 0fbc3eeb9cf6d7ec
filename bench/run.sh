#!/usr/bin/env bash
# The benchmark in one command: installs what is missing, then measures every system and prints the table.
#   bash bench/run.sh                 full run (about 15 minutes; LiteLLM is installed on first use)
#   bash bench/run.sh --smoke         a few seconds, no LiteLLM
#   bash bench/run.sh --help          every option
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "bench: no .venv: create it first (python3 -m venv .venv && .venv/bin/pip install -e .)" >&2
  exit 2
fi
bash bench/install-tools.sh >&2
exec .venv/bin/python bench/run.py "$@"
