#!/usr/bin/env bash
# Builds and runs the whole test suite twice: a release build, then an ASan+UBSan build.
# This is the README's test command and exactly what CI runs (.ci/run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
# ctest runs `jobs` tests at once; one compute thread each keeps the cores from being
# oversubscribed (OpenMP teams waiting on descheduled threads make tiny ops crawl).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export KTO_BUILD_TARGET=all

"$root/tools/build.sh" build -DCMAKE_CUDA_ARCHITECTURES=80
ctest --test-dir "$root/build" --output-on-failure -j "$jobs"

# -g1: line tables only (file:line in sanitizer reports), a third less to compile and link than -g.
"$root/tools/build.sh" build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DKTO_SANITIZE=ON -DKTO_CUDA=OFF
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$root/build-asan" --output-on-failure -j "$jobs"
echo "kto: all tests passed (release and asan+ubsan builds)"
