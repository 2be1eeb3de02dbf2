#!/usr/bin/env bash
# Run HERE (the dev machine) before bench/run.sh on the GPU machine: copies the shared baseline
# into .carry/ (gitignored), which the device call then carries: carry=[".debs", ".carry"].
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/.carry"
cp "$root/../shared/bench/kto_baseline.py" "$root/.carry/"
echo "bench: $root/.carry/kto_baseline.py ready"
