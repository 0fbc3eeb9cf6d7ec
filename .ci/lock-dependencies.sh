#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml (run after changing a dependency, then review the diff):
#   requirements.lock       runtime dependencies: what the Docker image installs
#   requirements-test.lock  runtime + the `test` extra: what CI installs
# Both are resolved for CPython 3.11 on Linux x86_64 (the image's and CI's platform) with uv.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install --quiet uv
compile() {
  local out=$1; shift
  {
    echo "# Locked from pyproject.toml by .ci/lock-dependencies.sh; do not edit by hand."
    .venv/bin/uv pip compile pyproject.toml "$@" --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
      --no-header --quiet
  } > "$out"
}
compile requirements.lock
compile requirements-test.lock --extra test
