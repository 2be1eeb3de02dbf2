#!/usr/bin/env bash
# Run ON THE GPU MACHINE (Ubuntu 24.04, nvcc 13, g++ 13, cmake 4; no apt, no network), from the
# repository root with .debs/ carried (tools/gpu/fetch-debs.sh fills it on the dev machine):
# unpacks the .debs into a prefix, builds test_backend_cuda for one architecture against it,
# runs the CPU-vs-CUDA parity suite, the end-to-end GPU tests (model and trainer against the
# transformers / PEFT / TRL fixtures), then both under compute-sanitizer memcheck, and prints one
# summary line last. Steps: check.sh [build] [test] [e2e] [memcheck] (default: all four; a later
# call on a warm machine can skip the build). Exit status non-zero when anything failed.
#   Environment: CUDA_ARCH (default 90), KTO_DEBS (.debs), KTO_PREFIX (/tmp/kto-prefix),
#   KTO_GPU_BUILD (build-gpu), KTO_GPU_TARGETS (what the build step builds), KTO_CMAKE_ARGS (extra
#   configure flags), OUT (logs are copied
#   there when set, e.g. the device tool's $OUT).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
debs=${KTO_DEBS:-$root/.debs}
prefix=${KTO_PREFIX:-/tmp/kto-prefix}
build=${KTO_GPU_BUILD:-$root/build-gpu}
arch=${CUDA_ARCH:-90}
logs="$build/check-logs"
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build test e2e memcheck)
want() { [[ " ${steps[*]} " == *" $1 "* ]]; }
multiarch=x86_64-linux-gnu
libdir="$prefix/usr/lib/$multiarch"

# --- the carried packages -----------------------------------------------------------------------
unpack() {
  ls "$debs"/*.deb >/dev/null 2>&1 || { echo "check: no .deb in $debs (run tools/gpu/fetch-debs.sh and carry .debs)"; return 1; }
  mkdir -p "$prefix"
  for f in "$debs"/*.deb; do
    case $(basename "$f") in  # OpenBLAS's Fortran runtime only where the image lacks it
      libgfortran5_*) ldconfig -p | grep -q 'libgfortran.so.5 ' && continue ;;
      libquadmath0_*) ldconfig -p | grep -q 'libquadmath.so.0 ' && continue ;;
    esac
    dpkg -x "$f" "$prefix"
  done
  # .pc files and absolute symlinks name /usr: point them into the prefix.
  find "$prefix" -name '*.pc' -exec sed -i -E -e "s#^([a-z_]+ ?= ?)/usr(/|\$)#\1$prefix/usr\2#" \
    -e "s# -([IL])/usr/# -\1$prefix/usr/#g" {} +
  find "$prefix" -type l -lname '/*' | while read -r link; do
    target=$(readlink "$link"); case $target in "$prefix"*) ;; *) ln -sfn "$prefix$target" "$link" ;; esac
  done
  # Debian resolves libopenblas.so / libblas.so through update-alternatives; dpkg -x runs none.
  for so in libopenblas.so libopenblas.so.0 libblas.so libblas.so.3; do
    [ -e "$libdir/openblas-pthread/$so" ] && ln -sfn "openblas-pthread/$so" "$libdir/$so"
  done
}

env_for_prefix() {
  export LD_LIBRARY_PATH="$libdir/openblas-pthread:$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_LIBDIR="$libdir/pkgconfig:$prefix/usr/share/pkgconfig"
  command -v pkg-config >/dev/null || export PKG_CONFIG="$prefix/usr/bin/pkgconf"
  command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
}

build_suite() {
  unpack || return 1
  env_for_prefix
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKTO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DCMAKE_PREFIX_PATH="$prefix/usr" -DCMAKE_LIBRARY_PATH="$libdir/openblas-pthread;$libdir" \
    -DCMAKE_INCLUDE_PATH="$prefix/usr/include;$prefix/usr/include/$multiarch/openblas-pthread" \
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5 ${KTO_CMAKE_ARGS:-} > "$logs/configure.log" 2>&1 || { tail -30 "$logs/configure.log"; return 1; }
  cmake --build "$build" --target ${KTO_GPU_TARGETS:-test_backend_cuda test_model_cuda} -j "$(nproc)" > "$logs/build.log" 2>&1 ||
    { grep -E "error|Error" "$logs/build.log" | head -40; return 1; }
}

# Prints "passed/failed/skipped" counts from a gtest log.
gtest_counts() {
  local p f s
  p=$(grep -oE '^\[  PASSED  \] [0-9]+' "$1" | grep -oE '[0-9]+$' | tail -1)
  f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$1" | grep -oE '[0-9]+' | tail -1)
  s=$(grep -oE '^\[  SKIPPED \] [0-9]+ test' "$1" | grep -oE '[0-9]+' | tail -1)
  echo "${p:-0} passed, ${f:-0} failed, ${s:-0} skipped"
}

mkdir -p "$logs"
status=0 summary="arch sm_$arch"
device=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
summary+=", device ${device:-none}"
if want build; then
  start=$SECONDS
  if build_suite; then summary+=", build ok ($((SECONDS - start)) s)"; else summary+=", BUILD FAILED"; status=1; fi
else
  env_for_prefix
fi
binary="$build/tests/test_backend_cuda"
if [ $status -eq 0 ] && want test; then
  start=$SECONDS
  "$binary" 2>&1 | tee "$logs/parity.log" | grep -E '^\[  FAILED  \]|worst err|Failure'
  rc=${PIPESTATUS[0]}
  summary+=", parity: $(gtest_counts "$logs/parity.log") ($((SECONDS - start)) s)"
  [ "$rc" -ne 0 ] && status=1 && summary+=" rc=$rc"
fi
e2e_binary="$build/tests/test_model_cuda"
if [ $status -eq 0 ] && want e2e; then
  start=$SECONDS
  "$e2e_binary" 2>&1 | tee "$logs/e2e.log" | grep -E '^\[  FAILED  \]|GPU|Failure|step |resumed'
  rc=${PIPESTATUS[0]}
  summary+=", e2e: $(gtest_counts "$logs/e2e.log") ($((SECONDS - start)) s)"
  [ "$rc" -ne 0 ] && status=1 && summary+=" rc=$rc"
fi
if [ $status -eq 0 ] && want memcheck; then
  start=$SECONDS
  # The 4097-token attention cases are left out (memcheck slows kernels ~100x); API errors are
  # not reported because the OOM test fails a cudaMalloc on purpose.
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)
  "${sanitizer:-compute-sanitizer}" --tool memcheck --report-api-errors no --error-exitcode 86 --print-limit 20 "$binary" \
    --gtest_filter='-ParityAttention.LongSequence4097' > "$logs/memcheck.log" 2>&1
  rc=$?
  grep -E '^========= (Invalid|ERROR|Program hit|Uninitialized)|ERROR SUMMARY' "$logs/memcheck.log" | head -30
  errors=$(grep -oE 'ERROR SUMMARY: [0-9]+' "$logs/memcheck.log" | grep -oE '[0-9]+$' | tail -1)
  summary+=", memcheck: ${errors:-?} errors, $(gtest_counts "$logs/memcheck.log") ($((SECONDS - start)) s)"
  [ "$rc" -ne 0 ] && status=1 && summary+=" rc=$rc"
  start=$SECONDS
  "${sanitizer:-compute-sanitizer}" --tool memcheck --report-api-errors no --error-exitcode 86 --print-limit 20 \
    "$e2e_binary" --gtest_filter='*GpuFixture*:*GpuFullGrads*:GpuKto.TenSteps*' > "$logs/memcheck-e2e.log" 2>&1
  rc=$?
  grep -E '^========= (Invalid|ERROR|Program hit|Uninitialized)|ERROR SUMMARY' "$logs/memcheck-e2e.log" | head -30
  errors=$(grep -oE 'ERROR SUMMARY: [0-9]+' "$logs/memcheck-e2e.log" | grep -oE '[0-9]+$' | tail -1)
  summary+=", memcheck e2e: ${errors:-?} errors, $(gtest_counts "$logs/memcheck-e2e.log") ($((SECONDS - start)) s)"
  [ "$rc" -ne 0 ] && status=1 && summary+=" rc=$rc"
fi
[ -n "${OUT:-}" ] && cp "$logs"/*.log "$OUT"/ 2>/dev/null
[ $status -eq 0 ] && result=PASS || result=FAIL
echo "kto gpu check: $result — $summary"
exit $status
