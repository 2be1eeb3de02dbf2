#!/usr/bin/env bash
# Run ON THE GPU MACHINE from the repository root: the shared/bench baseline (TRL's KTO step in
# transformers + PEFT, bf16, SDPA) and our kto_bench on the same synthetic rows, per model shape
# and gradient-checkpointing setting, in one call; prints one table last (bench/table.py).
#   bash bench/run.sh [SHAPES...]      shapes: qwen2.5-0.5b llama3.2-1b llama3.1-8b (default: all)
# Needs .carry/kto_baseline.py (bench/prepare.sh copies it there on the dev machine) and, for the
# build, .debs/ (tools/gpu/fetch-debs.sh). Environment: CKPT ("0 1": the baseline's settings to
# run), STEPS / WARMUP (timed and untimed steps, 12 / 6), OUT (results are copied there), QLORA
# ("8 2": after the shapes, the 8B shape with an NF4 base, 8-bit AdamW and checkpointing at these
# batch sizes, issue #7; "" skips it).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shapes=("$@")
[ ${#shapes[@]} -eq 0 ] && shapes=(qwen2.5-0.5b llama3.2-1b llama3.1-8b)
results=${OUT:-/tmp}/bench
mkdir -p "$results"
[ -f .carry/kto_baseline.py ] || { echo "bench: .carry/kto_baseline.py missing (run bench/prepare.sh here first)"; exit 1; }

KTO_GPU_TARGETS=kto_bench bash tools/gpu/check.sh build > "$results/build.txt" 2>&1 || { tail -20 "$results/build.txt"; exit 1; }
export LD_LIBRARY_PATH=/tmp/kto-prefix/usr/lib/x86_64-linux-gnu/openblas-pthread:/tmp/kto-prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
bench=build-gpu/kto_bench

for shape in "${shapes[@]}"; do
  rows=/tmp/kto-bench-rows-$shape.jsonl
  for ckpt in ${CKPT:-0 1}; do
    echo "== baseline $shape ckpt=$ckpt"
    python3 .carry/kto_baseline.py --model "$shape" --ckpt "$ckpt" --no-breakdown --measure "${STEPS:-12}" \
      --out "$results/baseline.jsonl" --dump-data "$rows" > "$results/baseline-$shape-$ckpt.log" 2>&1 ||
      tail -5 "$results/baseline-$shape-$ckpt.log"
  done
  for ckpt in ${CKPT:-0 1}; do
    echo "== kto.cpp $shape ckpt=$ckpt"
    OMP_NUM_THREADS=$(nproc) "$bench" --shape "$shape" --data "$rows" --ckpt "$ckpt" --warmup "${WARMUP:-6}" \
      --steps "${STEPS:-12}" --out "$results/kto.jsonl" 2> "$results/kto-$shape-$ckpt.log" || tail -5 "$results/kto-$shape-$ckpt.log"
  done
done
qlora_rows=/tmp/kto-bench-rows-llama3.1-8b.jsonl
for batch in ${QLORA-8 2}; do
  [ -f "$qlora_rows" ] || { echo "bench: QLoRA runs need the llama3.1-8b rows (run that shape too)"; break; }
  echo "== kto.cpp llama3.1-8b NF4 + adamw_8bit + ckpt, batch $batch"
  OMP_NUM_THREADS=$(nproc) "$bench" --shape llama3.1-8b --data "$qlora_rows" --ckpt 1 --nf4 1 --optim adamw_8bit \
    --batch "$batch" --warmup "${WARMUP:-6}" --steps "${STEPS:-12}" --out "$results/kto.jsonl" \
    2> "$results/kto-qlora-$batch.log" || tail -5 "$results/kto-qlora-$batch.log"
done
python3 bench/table.py "$results/baseline.jsonl" "$results/kto.jsonl" | tee "$results/table.md"
