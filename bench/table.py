#!/usr/bin/env python3
"""Joins the baseline's and kto_bench's JSON lines (bench/run.sh) into the table the README shows:
per shape and checkpointing setting, real tokens/s of both, the ratio, step time, peak memory of
both, our MFU against the bf16 matmul rate measured in the same call, and our per-phase times."""
import json
import sys


def read(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def planned(o):
    """The memory plan's predicted peak and its ratio to the measured one."""
    pred = o.get("predicted_peak_GiB")
    return "-" if pred is None else f"{pred:.2f} ({pred / o['peak_GiB']:.3f}x)"


def main(baseline_path, ours_path):
    base = [r for r in read(baseline_path) if r.get("kind") != "breakdown"]
    rows = read(ours_path)
    qlora = [r for r in rows if r.get("nf4")]
    ours = {(r["model"], bool(r.get("ckpt", False))): r for r in rows if not r.get("nf4")}
    gpu = next((r.get("gpu") for r in ours.values() if r.get("gpu")), "?")
    print(f"GPU: {gpu}; matmul bf16 8192^3 measured in this call: "
          + ", ".join(f"{r['matmul_TFLOPs']:.0f}" for r in ours.values()) + " TFLOP/s")
    print()
    print("| shape | gradient ckpt | baseline tok/s | kto.cpp tok/s | ratio | baseline s/step | kto.cpp s/step "
          "| baseline peak GiB | kto.cpp peak GiB | kto.cpp planned GiB | kto.cpp MFU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for b in base:
        o = ours.get((b["model"], bool(b["ckpt"])))
        if not b.get("ok"):
            print(f"| {b['model']} | {int(b['ckpt'])} | failed: {b.get('error', '?')[:60]} | | | | | | | | |")
            continue
        if o is None:
            continue
        ratio = o["real_tok_per_s"] / b["real_tok_per_s"]
        print(f"| {b['model']} | {'on' if b['ckpt'] else 'off'} | {b['real_tok_per_s']:,.0f} | {o['real_tok_per_s']:,.0f} "
              f"| {ratio:.2f}x | {b['s_per_step_median']:.3f} | {o['s_per_step_median']:.3f} | {b['peak_GiB']:.1f} "
              f"| {o['peak_GiB']:.2f} | {planned(o)} | {100 * o['mfu']:.1f}% |")
    if qlora:
        ref = next((b for b in base if b["model"] == "llama3.1-8b" and b["ckpt"] and b.get("ok")), None)
        print()
        print("QLoRA (issue #7): Llama-3.1-8B shape, NF4 base (double quantisation), 8-bit AdamW, gradient "
              "checkpointing. The baseline column is the baseline's bf16 LoRA with checkpointing at batch 8 "
              "(no bitsandbytes on the GPU machine):")
        print()
        print("| batch | kto.cpp tok/s | kto.cpp s/step | kto.cpp peak GiB | planned GiB (planned/measured) "
              "| baseline bf16 tok/s | baseline bf16 peak GiB |")
        print("|---|---|---|---|---|---|---|")
        for o in qlora:
            ref_tok = f"{ref['real_tok_per_s']:,.0f}" if ref else "-"
            ref_peak = f"{ref['peak_GiB']:.1f}" if ref else "-"
            print(f"| {o['batch']} | {o['real_tok_per_s']:,.0f} | {o['s_per_step_median']:.3f} | {o['peak_GiB']:.2f} "
                  f"| {planned(o)} | {ref_tok} | {ref_peak} |")
    print()
    print("kto.cpp per-phase seconds per step (policy on KL / reference main+KL / policy forward with head / "
          "backward with head / optimizer):")
    for o in list(ours.values()) + qlora:
        p = o["phases_s_per_step"]
        tag = f"NF4 batch {o['batch']}" if o.get("nf4") else f"ckpt {'on' if o['ckpt'] else 'off'}"
        print(f"  {o['model']} {tag}: {p['policy_kl_fwd']:.3f} / {p['reference_fwd']:.3f} / "
              f"{p['policy_fwd_with_head']:.3f} / {p['backward_with_head']:.3f} / {p['optimizer']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
