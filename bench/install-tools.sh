#!/usr/bin/env bash
# Tools the benchmark needs, installed only when missing (safe to run again; .ci/run calls it):
#   apt:  nginx (mock upstream and reference proxy), wrk (saturated load), redis-server (the harness
#         starts its own when none answers at --redis-url), util-linux (taskset)
#   pip:  matplotlib into the project's .venv (the chart; the table needs nothing more)
# LiteLLM is not installed here: `bench/run.py` puts it in bench/.litellm-venv when a run includes it.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${BENCH_PYTHON:-.venv/bin/python}
if [ -x "$PY" ] && ! "$PY" -c 'import matplotlib' >/dev/null 2>&1; then
  echo "bench: installing matplotlib into $(dirname "$(dirname "$PY")")"
  "$PY" -m pip install --quiet --disable-pip-version-check matplotlib
fi
echo "bench: tools ready (nginx $(nginx -v 2>&1 | sed 's|.*/||'), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2))"
