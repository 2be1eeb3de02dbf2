#!/usr/bin/env bash
# Installs the Debian packages kto needs (if missing), configures and builds.
#   tools/build.sh [BUILD_DIR] [extra cmake args…]     (BUILD_DIR defaults to build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true
"$root/tools/install-deps.sh"
cmake -S "$root" -B "$root/$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$root/$build" -j "$(nproc)"
