#!/usr/bin/env bash
# Make sure `redis-server` is installed: the tests start their own servers on free loopback ports
# (tests/test_state_support.py) and never use a Redis they did not start. Nothing is started here.
# Installing needs root (apt-get); when redis-server is already on the PATH nothing is done.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  echo "redis: $(redis-server --version | cut -d' ' -f1-3) installed"
  exit 0
fi
echo "redis: installing redis-server with apt-get (needs root)"
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
# Debian's package may start a system service on 127.0.0.1:6379; the tests do not use it.
command -v redis-server >/dev/null 2>&1 || { echo "redis: installation failed" >&2; exit 1; }
