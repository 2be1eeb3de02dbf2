"""Reference values for the training math: the KTO objective (TRL v1.9 `_compute_loss` formulas,
gradients by torch autograd), torch.optim.AdamW trajectories, and transformers' LR schedules.

Writes tests/fixtures/train/math.json. Run: python tools/reference/make_train_math.py
"""
import json
import math
import pathlib

import torch
import torch.nn.functional as F
import transformers

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "train" / "math.json"


def kto_case(name, loss_type, beta, w_d, w_u, labels, seed, kl_override=None):
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    policy = (-40 + 10 * torch.randn(n, generator=g, dtype=torch.float64)).requires_grad_(True)
    ref = -40 + 10 * torch.randn(n, generator=g, dtype=torch.float64)
    kl_policy = -40 + 10 * torch.randn(n, generator=g, dtype=torch.float64)
    kl_ref = kl_policy - 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    lab = torch.tensor(labels, dtype=torch.bool)
    if loss_type == "kto":
        kl = (kl_policy - kl_ref).mean().clamp(min=0) if kl_override is None else torch.tensor(kl_override, dtype=torch.float64)
    else:
        kl = torch.zeros((), dtype=torch.float64)
    ch, rj = torch.nonzero(lab).view(-1), torch.nonzero(~lab).view(-1)
    ratio_c = policy.index_select(0, ch) - ref.index_select(0, ch)
    ratio_r = policy.index_select(0, rj) - ref.index_select(0, rj)
    if loss_type == "kto":
        lc = 1 - F.sigmoid(beta * (ratio_c - kl))
        lr = 1 - F.sigmoid(beta * (kl - ratio_r))
    else:
        lc = 1 - F.sigmoid(beta * ratio_c)
        lr = F.sigmoid(beta * ratio_r)
    loss = torch.cat((w_d * lc, w_u * lr)).nanmean()
    loss.backward()
    case = {
        "name": name, "loss_type": loss_type, "beta": beta, "desirable_weight": w_d, "undesirable_weight": w_u,
        "labels": labels, "policy_logps": policy.detach().tolist(), "ref_logps": ref.tolist(),
        "kl_policy_logps": kl_policy.tolist(), "kl_ref_logps": kl_ref.tolist(),
        "kl": float(kl), "loss": float(loss), "d_policy_logps": policy.grad.tolist(),
    }
    if len(ch):
        case["rewards/chosen"] = float((beta * ratio_c.detach()).nansum() / len(ch))
        case["logps/chosen"] = float(policy.detach().index_select(0, ch).nansum() / len(ch))
    if len(rj):
        case["rewards/rejected"] = float((beta * ratio_r.detach()).nansum() / len(rj))
        case["logps/rejected"] = float(policy.detach().index_select(0, rj).nansum() / len(rj))
    if len(ch) and len(rj):
        case["rewards/margins"] = case["rewards/chosen"] - case["rewards/rejected"]
    return case


def adamw_case(name, lr_values, weight_decay, seed, n=37):
    g = torch.Generator().manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(n, generator=g))
    start = p.detach().clone()
    opt = torch.optim.AdamW([p], lr=lr_values[0], betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay, foreach=False)
    grads, params = [], []
    for lr in lr_values:
        for group in opt.param_groups:
            group["lr"] = lr
        grad = torch.randn(n, generator=g) * 0.1
        p.grad = grad.clone()
        opt.step()
        grads.append(grad.tolist())
        params.append(p.detach().tolist())
    return {"name": name, "weight_decay": weight_decay, "lr": lr_values, "start": start.tolist(), "grads": grads, "params": params}


def schedule_case(kind, warmup, total, base_lr=2e-4):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = transformers.get_scheduler(kind, opt, num_warmup_steps=warmup, num_training_steps=total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return {"type": kind, "warmup_steps": warmup, "total_steps": total, "base_lr": base_lr, "lr": lrs}


def main():
    mixed = [True, False, True, True, False, False, True, False]
    cases = [
        kto_case("kto_mixed", "kto", 0.1, 1.0, 1.0, mixed, 1),
        kto_case("kto_weighted", "kto", 0.5, 1.33, 0.75, mixed, 2),
        kto_case("kto_all_desirable", "kto", 0.1, 1.0, 1.0, [True] * 5, 3),
        kto_case("kto_all_undesirable", "kto", 0.2, 1.0, 1.0, [False] * 4, 4),
        kto_case("kto_kl_positive", "kto", 0.1, 1.0, 1.0, mixed, 5, kl_override=3.25),
        kto_case("apo_zero_unpaired", "apo_zero_unpaired", 0.1, 1.0, 2.0, mixed, 6),
    ]
    adamw = [
        adamw_case("no_decay", [1e-3] * 10, 0.0, 7),
        adamw_case("decay_and_schedule", [i * 1e-3 / 3 for i in range(1, 4)] + [1e-3 * (10 - i) / 7 for i in range(7)], 0.01, 8),
    ]
    schedules = [schedule_case(k, w, 20) for k in ("constant", "constant_with_warmup", "linear", "cosine") for w in (0, 3)]
    warmup = [{"warmup_steps": ws, "total": t, "expected": transformers.TrainingArguments(
        output_dir="/tmp/kto-ref", warmup_steps=ws, report_to=[]).get_warmup_steps(t)} for ws, t in ((0.1, 25), (0.0, 10), (5, 100), (0.33, 7))]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"kto": cases, "adamw": adamw, "schedules": schedules, "warmup": warmup}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
