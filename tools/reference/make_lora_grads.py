#!/usr/bin/env python3
"""LoRA log-probs, metric sums and gradients from PEFT + transformers on the tiny fixture models.

For each fixture model in tests/fixtures/models/<name> (llama: GQA + llama3 RoPE; mistral:
sliding window 8; qwen2: qkv bias + tied head; qwen3: q/k norm, and rsLoRA), wraps it with
PEFT LoraConfig(r=4, lora_alpha=8, all seven projections, lora_dropout=0), gives lora_A and
lora_B random non-zero values (B too, so every gradient is non-zero), saves that adapter with
`save_pretrained` into tests/fixtures/lora/<name>/adapter_init/, and runs three sequences one at a
time (no padding: what a packed batch must equal). It writes tests/fixtures/lora/<name>/
expected.json (sequences, prompt lengths, coefficients c_s, per-sequence summed completion
log-probs, metric sums) and grads.bin (little-endian f32, tensors at the offsets listed in
expected.json): the .grad of every lora_A / lora_B after backward of  Σ_s c_s · logp_s.

PEFT's own init (init_lora_weights=True) is checked here by its distribution, since torch's RNG
cannot be reproduced in C++: every lora_A within ±1/sqrt(in_features) (kaiming_uniform_ with
a=sqrt(5)) with a spread near that of U(-b, b), every lora_B exactly zero. The result is recorded
as "peft_init_check" in expected.json.

Re-running gives identical files except for the order of target_modules in adapter_config.json
(PEFT saves a Python set; the order follows the string hash seed; our tests ignore it).

Run: /work/venv/bin/python tools/reference/make_lora_grads.py [names…]   (torch CPU, transformers, peft)
"""
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import peft
import torch
import torch.nn.functional as F
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "fixtures" / "models"
OUT = REPO / "tests" / "fixtures" / "lora"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK, ALPHA = 4, 8
SPECS = {"llama": dict(rslora=False, seed=11), "mistral": dict(rslora=False, seed=12),
         "qwen2": dict(rslora=False, seed=13), "qwen3": dict(rslora=True, seed=14)}
SHAPES = [(5, 7), (1, 4), (6, 14)]  # (prompt, completion) lengths; 20 tokens > mistral's window of 8


def check_peft_init(model):
    """init_lora_weights=True: A ~ kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0."""
    n_a = n_b = 0
    for name, p in model.named_parameters():
        p = p.detach()
        if "lora_A" in name:
            bound = 1.0 / math.sqrt(p.shape[1])
            assert float(p.abs().max()) <= bound * (1 + 1e-6), name
            std = float(p.std())
            assert 0.7 * bound / math.sqrt(3) < std < 1.3 * bound / math.sqrt(3), (name, std, bound)
            n_a += 1
        elif "lora_B" in name:
            assert float(p.abs().max()) == 0.0, name
            n_b += 1
    assert n_a == n_b > 0
    return {"lora_A_within_bound": n_a, "lora_B_zero": n_b,
            "rule": "|A| <= 1/sqrt(in_features), std(A) within 30% of 1/sqrt(3 in_features), B == 0"}


def build(name, spec):
    model = AutoModelForCausalLM.from_pretrained(str(MODELS / name), dtype=torch.float32,
                                                 attn_implementation="eager")
    torch.manual_seed(spec["seed"])
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0,
                        use_rslora=spec["rslora"], task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    init_check = check_peft_init(model)
    gen = torch.Generator().manual_seed(spec["seed"] + 100)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_B" in pname:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
            elif "lora_A" in pname:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
    model.peft_config["default"].base_model_name_or_path = f"tests/fixtures/models/{name}"
    model.train()  # dropout is 0, so train mode only matters for autograd bookkeeping
    return model, init_check


def sequence_terms(model, ids, n_prompt):
    """Summed completion log-prob (with grad) and the metric sums TRL's statistics are built from."""
    logits = model(input_ids=torch.tensor([ids])).logits[0].float()  # [L, V]
    shifted = logits[n_prompt - 1:-1]                                  # positions predicting completions
    logp = F.log_softmax(shifted, dim=-1)
    labels = torch.tensor(ids[n_prompt:])
    token_logp = logp[torch.arange(len(labels)), labels]
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
        mean_logit = shifted.mean(-1)
    return token_logp.sum(), float(mean_logit.sum()), float(entropy.sum())


def write(name, spec):
    model, init_check = build(name, spec)
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model.save_pretrained(str(out / "adapter_init"))
    (out / "adapter_init" / "README.md").unlink(missing_ok=True)
    gen = torch.Generator().manual_seed(spec["seed"] + 200)
    vocab = model.config.vocab_size
    seqs = [torch.randint(3, vocab, (p + c,), generator=gen).tolist() for p, c in SHAPES]
    n_prompt = [p for p, _ in SHAPES]
    coeffs = (torch.randn(len(seqs), generator=gen)).tolist()
    model.zero_grad()
    total, logps, mean_logits, entropies = 0.0, [], [], []
    for ids, n, c in zip(seqs, n_prompt, coeffs):
        logp, mean_logit, entropy = sequence_terms(model, ids, n)
        total = total + c * logp
        logps.append(float(logp.detach())), mean_logits.append(mean_logit), entropies.append(entropy)
    total.backward()
    grads, blobs, offset = [], [], 0
    for pname, p in model.named_parameters():
        if "lora_" not in pname:
            continue
        g = p.grad.detach().float().contiguous().numpy().astype("<f4")
        assert float(np.abs(g).max()) > 0, f"{pname}: zero gradient"
        grads.append({"name": pname.replace(".default", ""), "shape": list(g.shape), "offset": offset})
        blobs.append(g.reshape(-1))
        offset += g.size
    np.concatenate(blobs).tofile(out / "grads.bin")
    expected = {"model": name, "peft": peft.__version__, "transformers": transformers.__version__,
                "r": RANK, "lora_alpha": ALPHA, "use_rslora": spec["rslora"], "sequences": seqs,
                "n_prompt": n_prompt, "coefficients": coeffs, "logps": logps, "mean_logit_sums": mean_logits,
                "entropy_sums": entropies, "n_completion_tokens": [c for _, c in SHAPES],
                "grads_file": "grads.bin", "grads": grads, "peft_init_check": init_check}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"{name}: {len(grads)} LoRA tensors, logps {[round(x, 3) for x in logps]}")


def main():
    for name in sys.argv[1:] or list(SPECS):
        write(name, SPECS[name])


if __name__ == "__main__":
    main()
