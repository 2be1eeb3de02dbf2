#!/usr/bin/env python3
"""bitsandbytes AdamW8bit fixtures, produced by bitsandbytes itself (its CPU optimizer kernels).

Writes tests/fixtures/adamw8bit/steps.safetensors and steps.json. Two parameters: `big`
(4500 elements >= min_8bit_size 4096: 8-bit blockwise states, 18 blocks of 256, the last
partial) and `small` (300 elements: bitsandbytes keeps fp32 states). STEPS steps with lr LR,
betas (0.9, 0.999), eps 1e-8, weight_decay 0.01 (AdamW8bit's defaults, except lr).
Tensors: <p>.param0 (initial), <p>.grad<k> (k = 1..STEPS), <p>.param<k>, and for big
<p>.state1_<k> / state2_<k> (U8), absmax1_<k> / absmax2_<k> (F32) after step k; for small
<p>.exp_avg_<k> / exp_avg_sq_<k> (F32); qmap1 / qmap2 (F32 [256]) as the optimizer holds them.

Run: /work/venv/bin/python tools/reference/make_adamw8bit.py   (torch CPU, bitsandbytes)
"""
import json
from pathlib import Path

import bitsandbytes as bnb
import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "adamw8bit"
STEPS = 3
LR = 1e-2


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(7)
    params = {"big": torch.nn.Parameter(torch.randn(4500, generator=gen) * 0.1),
              "small": torch.nn.Parameter(torch.randn(300, generator=gen) * 0.1)}
    out = {f"{n}.param0": p.detach().clone() for n, p in params.items()}
    opt = bnb.optim.AdamW8bit(list(params.values()), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    for k in range(1, STEPS + 1):
        for n, p in params.items():
            g = torch.randn(p.shape, generator=gen) * 0.01
            if k == 2:
                g[::50] *= 30.0  # a few large gradients: new block maxima
            p.grad = g
            out[f"{n}.grad{k}"] = g.clone()
        opt.step()
        for n, p in params.items():
            out[f"{n}.param{k}"] = p.detach().clone()
            s = opt.state[p]
            if n == "big":
                for key in ("state1", "state2", "absmax1", "absmax2"):
                    out[f"{n}.{key}_{k}"] = s[key].clone()
            else:
                out[f"{n}.exp_avg_{k}"] = s["state1"].clone()
                out[f"{n}.exp_avg_sq_{k}"] = s["state2"].clone()
    s = opt.state[params["big"]]
    out["qmap1"] = s["qmap1"].clone()
    out["qmap2"] = s["qmap2"].clone()
    save_file({k: v.contiguous() for k, v in out.items()}, OUT / "steps.safetensors")
    (OUT / "steps.json").write_text(json.dumps({
        "bitsandbytes": bnb.__version__, "torch": torch.__version__, "steps": STEPS, "lr": LR, "beta1": 0.9,
        "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01, "blocksize": 256, "min_8bit_size": 4096}, indent=2) + "\n")


if __name__ == "__main__":
    main()
