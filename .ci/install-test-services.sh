#!/usr/bin/env bash
# Servers the transport and Redis conformance tests start themselves, installed only when missing:
#   tinyproxy     a real forward proxy (tests/test_egress_proxy.py)
#   openssl       certificates made per run (private CA, server and client certificates)
#   redis-server  standalone, TLS, unix-socket and cluster instances (tests/test_redis_*.py);
#                 Debian's build has TLS support
set -euo pipefail
missing=()
command -v tinyproxy >/dev/null 2>&1 || missing+=(tinyproxy)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test services: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts tinyproxy as a service on install where an init system runs; the tests start their own.
echo "test services: ready ($(tinyproxy -v 2>&1 | head -1), $(redis-server --version | cut -d' ' -f3))"
