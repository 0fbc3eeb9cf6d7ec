#!/usr/bin/env bash
# Install what the observability tests need; safe to run again (each step is skipped when already done).
#   - Debian's `prometheus` package: the `prometheus` server (integration test) and `promtool`
#     (rule checks, rule unit tests, PromQL parsing of the dashboard's queries).
#   - node + npm, then `npm ci` in observability/schema-check: @grafana/schema and TypeScript, which
#     validate the Grafana dashboard against Grafana's own schema.
#   - matplotlib in the project's virtualenv: observability/plot_from_prometheus.py draws the README picture.
# Usage: bash .ci/install-observability-tools.sh   (as root, or with sudo available, for apt-get)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
    # The package may try to start a service on install; in a container there is none to start.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "installing Debian package prometheus (prometheus, promtool)"
    apt_install prometheus
fi
promtool --version 2>&1 | head -n 1

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing Debian packages nodejs npm"
    apt_install nodejs npm
fi
node --version

SCHEMA_CHECK="$ROOT/observability/schema-check"
if ! (cd "$SCHEMA_CHECK" && npm ls --depth=0 >/dev/null 2>&1); then
    echo "installing observability/schema-check dependencies (npm ci)"
    (cd "$SCHEMA_CHECK" && npm ci --no-audit --no-fund)
fi

if ! "$PYTHON" -c "import matplotlib" 2>/dev/null; then
    echo "installing matplotlib into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
    "$PYTHON" -m pip install --quiet "matplotlib>=3.7"
fi
echo "observability tools ready"
