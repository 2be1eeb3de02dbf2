#!/usr/bin/env bash
# Installs the Debian packages kto needs (if missing), configures and builds the `kto` program
# (KTO_BUILD_TARGET=all builds the tests and examples too, as tools/test.sh does).
#   tools/build.sh [BUILD_DIR] [extra cmake args…]     (BUILD_DIR defaults to build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true
"$root/tools/install-deps.sh"
cmake -S "$root" -B "$root/$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$root/$build" --target "${KTO_BUILD_TARGET:-kto}" -j "$(nproc)"
