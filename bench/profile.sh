#!/usr/bin/env bash
# Run ON THE GPU MACHINE from the repository root: where one KTO step's GPU time goes, per kernel,
# for one model shape. Builds kto_bench, writes the baseline's synthetic rows (its own make_data,
# no model run), then times every kernel of one untimed + one timed step under Nsight Compute
# (one metric, gpu__time_duration, clocks left alone) and prints the kernels by total time.
#   bash bench/profile.sh SHAPE [CKPT]      e.g. bash bench/profile.sh llama3.2-1b 0
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shape=${1:?shape}; ckpt=${2:-0}
results=${OUT:-/tmp}/profile
mkdir -p "$results"
[ -f .carry/kto_baseline.py ] || { echo "profile: .carry/kto_baseline.py missing (bench/prepare.sh)"; exit 1; }
if [ ! -x build-gpu/kto_bench ]; then
  KTO_GPU_TARGETS=kto_bench bash tools/gpu/check.sh build > "$results/build.txt" 2>&1 || { tail -20 "$results/build.txt"; exit 1; }
fi
export LD_LIBRARY_PATH=/tmp/kto-prefix/usr/lib/x86_64-linux-gnu/openblas-pthread:/tmp/kto-prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
rows=/tmp/kto-bench-rows-$shape.jsonl
python3 - "$shape" "$rows" <<'PY'
import json, sys
sys.path.insert(0, ".carry")
import kto_baseline as k
shape, out = sys.argv[1], sys.argv[2]
p, c, l, _, _ = k.make_data(64, k.MODEL_CONFIGS[shape]["vocab_size"])
with open(out, "w") as f:
    for pi, ci, li in zip(p, c, l):
        f.write(json.dumps({"prompt_ids": pi, "completion_ids": ci + [k.EOS_ID], "label": li}) + "\n")
PY
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
OMP_NUM_THREADS=$(nproc) "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv \
  --print-units base build-gpu/kto_bench --shape "$shape" --data "$rows" --ckpt "$ckpt" --warmup 1 --steps 1 \
  > "$results/ncu-$shape-$ckpt.csv" 2> "$results/ncu-$shape-$ckpt.log"
python3 - "$results/ncu-$shape-$ckpt.csv" <<'PY'
import csv, collections, sys
rows = [r for r in csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))]
head, body = rows[0], rows[1:]
ki, vi = head.index("Kernel Name"), head.index("Metric Value")
tot, cnt = collections.Counter(), collections.Counter()
for r in body:
    name = r[ki].split("(")[0][:90]
    tot[name] += float(r[vi].replace(",", "")) / 2  # two steps profiled
    cnt[name] += 0.5
all_ns = sum(tot.values())
print(f"kernel time per step: {all_ns/1e6:.1f} ms over {int(sum(cnt.values()))} launches")
for name, ns in tot.most_common(40):
    print(f"{ns/1e6:9.2f} ms {100*ns/all_ns:5.1f}% {int(cnt[name]):6d}x  {name}")
PY
