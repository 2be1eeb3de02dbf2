#!/usr/bin/env bash
# Run HERE (the Debian 12 development machine, which has apt and the network): downloads into
# .debs/ (gitignored) the Debian packages that tools/gpu/check.sh unpacks on the GPU machine
# (Ubuntu 24.04 with nvcc, g++ and cmake but no apt, no network, none of our -dev packages).
# Debian 12's libraries run on Ubuntu 24.04 (older glibc/libstdc++ ABI). Carry the folder:
#   run(command="bash tools/gpu/check.sh", carry=[".debs"])
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/.debs"

packages=(
  nlohmann-json3-dev                 # header-only, CMake config
  libyaml-cpp-dev libyaml-cpp0.7     # configure needs the config; libkto links it
  libcli11-dev                       # header-only
  libpcre2-dev libpcre2-8-0          # pkg-config libpcre2-8
  libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread  # the CPU reference backend
  libgfortran5 libquadmath0          # OpenBLAS's runtime deps; unpacked only where missing there
  libicu-dev libicu72                # pkg-config icu-uc
  libgtest-dev                       # static gtest + CMake config
  pkgconf pkgconf-bin libpkgconf3    # pkg-config, used only if the image has none
)

mkdir -p "$out"
rm -f "$out"/*.deb
cd "$out"
if ! apt-get download "${packages[@]}" >/dev/null; then
  echo "fetch-debs: apt-get download failed; run 'apt-get update' (as root) and try again" >&2
  exit 1
fi
echo "fetch-debs: $(ls ./*.deb | wc -l) packages, $(du -sh . | cut -f1) in $out"
