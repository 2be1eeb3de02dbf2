#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages kto.cpp builds against. Idempotent: packages already
# present are left alone, and apt is not touched at all when nothing is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  nlohmann-json3-dev   # JSON (safetensors headers, config.json, tokenizer.json)
  libyaml-cpp-dev      # training configs
  libcli11-dev         # command line
  libpcre2-dev         # tokenizer pre-tokenisation regexes
  libicu-dev           # tokenizer Unicode normalization (NFC)
  libopenblas-dev      # CPU matmul
  libgtest-dev         # tests
  libcurl4-openssl-dev # the HF Hub client (kto pull / push)
  libssl-dev           # sha256 / sha1 of Hub downloads and uploads (libcrypto)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "kto: installing ${missing[*]}" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
