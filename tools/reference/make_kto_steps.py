#!/usr/bin/env python3
"""Ten optimizer steps of the real TRL v1.9.0 KTOTrainer (LoRA, CPU, fp32): the outside truth for
kto.cpp's training loop.

Runs trl.KTOTrainer itself (nothing of TRL is copied or edited; a few methods of the trainer
*instance* are wrapped to read values out) on the tiny fixture model tests/fixtures/models/llama
(eager attention, fp32) with PEFT LoRA r=4, alpha=8, dropout 0 on all seven projections. The
reference model is the base model with the adapter disabled (TRL's PEFT path, `ref_model=None`).

PEFT initialises lora_B = 0, which would make policy == reference and leave lora_A without
gradient at step 1; so right after the trainer has built the PeftModel every lora_B is overwritten
with N(0, 0.02^2) from a fixed torch.Generator (lora_A keeps PEFT's kaiming-uniform init drawn
after torch.manual_seed(LORA_SEED)), and that adapter is saved (PEFT format) as
<variant>/adapter_init BEFORE the first step. The C++ side loads exactly these weights.

Data: tests/fixtures/kto_steps/train.jsonl (64 standard unpaired rows {prompt, completion, label},
40 desirable, fixed irregular label pattern LABELS below, text drawn deterministically from fixed
word lists; row 13's completion already ends with the EOS text; row 6's main sequence and row 7's
KL sequence are longer than max_length 64 and get cut; no other row is).

Config (all variants): per_device_train_batch_size 4, max_length 64, beta 0.1, learning_rate 5e-3,
lr_scheduler_type linear, warmup_steps 3, max_steps 10, logging_steps 1, max_grad_norm 1.0,
weight_decay 0.01, the default optimizer of transformers 5 (optim "adamw_torch_fused", i.e.
torch.optim.AdamW(fused=True): betas 0.9/0.999, eps 1e-8, decoupled decay p -= lr*wd*p on every
trainable LoRA tensor, no decay exclusions apply to lora_A/lora_B), seed 42, no gradient
checkpointing, disable_dropout, save_strategy "no".
Variants: base (GA 1) · accum (gradient_accumulation_steps 2) · precompute
(precompute_ref_log_probs, GA 1) · apo (loss_type apo_zero_unpaired, GA 1).

How TRL 1.9 orders the data (what a reimplementation must reproduce):
  * KTOConfig defaults `train_sampling_strategy="sequential"`; KTOTrainer._get_train_sampler
    returns SequentialSampler itself for transformers < 5.2 and otherwise defers to
    Trainer._get_train_sampler, which with "sequential" is also SequentialSampler. So rows are
    used in file order, no shuffle, for every loss type (apo too, unless the user sets "random").
    Micro-batch k (0-based, within an epoch) = rows [4k, 4k+4); drop_last False.
  * The KL completions are attached at dataset preparation by a batched `map` with
    batch_size = per_device_train_batch_size over the (filtered) dataset, i.e. rotated by one
    inside the same aligned blocks of 4 that the sequential sampler yields.
  * An epoch is 64/4 = 16 micro-batches. When max_steps needs more (accum: 10 steps x 2 = 20
    micro-batches), the second epoch starts again at row 0 in the same order.
  * precompute_ref_log_probs: one pass over the dataset in order (DataLoader shuffle=False,
    batch size precompute_ref_batch_size or per_device_train_batch_size), before training,
    adapter disabled.

What the HF Trainer (transformers 5.x) logs, per optimizer step (logging_steps 1):
  * loss: sum over the step's micro-batches of (micro-batch loss / GA), i.e. the mean of the
    micro-batch losses (KTOTrainer sets model_accepts_loss_kwargs=False, so the Trainer divides
    each loss by current_gradient_accumulation_steps before backward and accumulates it).
  * grad_norm: total L2 norm of all trainable grads BEFORE clipping (accelerator.clip_grad_norm_
    returns the pre-clip norm; clipping to max_grad_norm happens in the same call).
  * learning_rate: the lr the optimizer step just used (read before lr_scheduler.step()). With
    linear warmup 3 that is 0 at step 1 (so step 1 changes no weight; Adam's moments still
    update), 1/3·lr at step 2, 2/3·lr at step 3, lr at step 4, then linear decay to 0 at step 10
    (lr·(10−s+1)/7 for s ≥ 4, s = 1-based step).
  * epoch: epoch_index + (micro_batches_done_in_epoch)/(micro-batches per epoch), e.g. 0.0625 per
    step for base, 0.125 per step for accum (1.125 and 1.25 in its second epoch).
  * KTO metrics: each micro-batch appends to a list, the logged value is the plain mean of the
    list since the last log (so with GA 2 the mean of two micro-batch values; margins only from
    micro-batches that have both labels, rewards/logps/logits per label only from micro-batches
    that have that label). num_tokens is the running total of attention_mask.sum() of the MAIN
    sequences (prompt + completion incl. BOS/EOS, no padding, no KL sequences) over all
    micro-batches so far; the logged value is the total at the last micro-batch.
  * A key is absent from a step's log when no micro-batch of that step produced it: base step 4
    (rows 12-15, all desirable) has no rewards/rejected, logps/rejected, logits/rejected,
    rewards/margins; base step 10 (rows 36-39, all undesirable) none of the /chosen keys and no
    margins. apo_zero_unpaired runs no KL pass but still logs kl = 0.0 every step.

Written (tests/fixtures/kto_steps/):
  train.jsonl, versions.json
  <variant>/kto_config.json        the settings used
  <variant>/log_history.json       {"log_history": [TRL's per-step log dicts], "train_loss": x}
  <variant>/adapter_init/          PEFT adapter before step 1 (adapter_config.json + safetensors)
  <variant>/adapter_final/         PEFT adapter after step 10
  base/grads_step1.safetensors     fp32 .grad of every lora_A/lora_B at the first optimizer step,
                                   before clipping, keys as in adapter_model.safetensors
  base/batch1.json                 the first micro-batch: token ids, prompt lengths, labels, per-row
                                   policy/ref logps of the main and KL sequences, kl, loss
  precompute/ref_logps.json        TRL's precomputed ref_logps / ref_KL_logps for all 64 rows

Run: PYTHONPATH=/tmp/trl19/x /work/venv/bin/python tools/reference/make_kto_steps.py [--out DIR]
     [--variants base,accum,precompute,apo]
     (TRL 1.9.0 unpacked at /tmp/trl19/x; torch CPU, transformers 5.x, peft, datasets)
"""
import argparse
import json
import logging
import math
import os
import random
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets  # noqa: E402
import peft  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
import trl.trainer.kto_trainer as kto_mod  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import LoraConfig  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import KTOConfig, KTOTrainer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MODEL_REL = "tests/fixtures/models/llama"
MODEL = REPO / MODEL_REL
OUT_DEFAULT = REPO / "tests" / "fixtures" / "kto_steps"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_SEED = 1234  # torch.manual_seed before the trainer builds the PeftModel (lora_A init)
B_SEED = 4321  # torch.Generator for the lora_B overwrite
B_STD = 0.02
N_ROWS = 64

COMMON = dict(
    per_device_train_batch_size=4,
    max_length=64,
    beta=0.1,
    learning_rate=5e-3,
    lr_scheduler_type="linear",
    warmup_steps=3,
    max_steps=10,
    logging_steps=1,
    max_grad_norm=1.0,
    weight_decay=0.01,
    seed=42,
    gradient_checkpointing=False,
    disable_dropout=True,
    save_strategy="no",
    report_to=[],
    use_cpu=True,
    bf16=False,
    fp16=False,
    dataloader_num_workers=0,
    dataloader_pin_memory=False,
)
VARIANTS = {
    "base": dict(gradient_accumulation_steps=1),
    "accum": dict(gradient_accumulation_steps=2),
    "precompute": dict(gradient_accumulation_steps=1, precompute_ref_log_probs=True),
    "apo": dict(gradient_accumulation_steps=1, loss_type="apo_zero_unpaired"),
}

# ---------------------------------------------------------------------------------------------
# Dataset: deterministic, English-like, irregular label mix (~60 % desirable)

SUBJECTS = ["the cat", "my friend", "a small robot", "the old teacher", "our team", "the river",
            "a quiet student", "the baker", "this city", "the young pilot", "her brother", "Anna"]
VERBS = ["wants to know", "asked about", "is thinking of", "explained", "wrote about", "found",
         "likes", "remembers", "talked about", "needs"]
OBJECTS = ["the way home", "a good book", "the weather", "fresh bread", "the red door",
           "an easy recipe", "the next train", "a new song", "the map", "cold water", "it"]
PROMPT_HEADS = ["Tell me why", "Explain how", "Say if", "Question:", "Why", "Guess what", ""]
GOOD = ["Yes, that is right.", "It is simple and clear.", "Because it helps everyone.",
        "The answer is quite easy.", "Sure, here is a short answer for you.", "It works well most days.",
        "Take the left road.", "Add salt and wait.", "That sounds good to me.", "We can do it together.",
        "Yes."]
BAD = ["no no no no", "I will not say.", "blue seven window jump", "Whatever, go away.",
       "It is the the the.", "Nothing matters at all, really, so stop asking me.", "banana sky under",
       "Ask someone else."]
# Labels, 16 micro-batches of 4 (D = desirable): 40/64 desirable, mixed blocks plus one all-D block
# (micro-batch 4: no rejected rows, so no rewards/margins that step) and one all-U block (10).
LABELS = "DUDD DDUD UDDU DDDD DUDU UDDD DDUD UUDU DUDD UUUU DDUD DUDD UDDD DDUU DUDD UDUD".replace(" ", "")
EOS_TEXT_ROW = 13  # this row's completion already ends with the EOS text (TRL must not add a second)
# Row 6 (undesirable, micro-batch 2) is long enough that its main sequence and the KL sequence of
# row 7 (which borrows its completion) are cut at max_length 64 (keep-start).
LONG_ROWS = {6: ("Question: why would the young pilot and her brother remember yesterday's weather?",
                 " Nothing matters anymore, so please stop asking everybody these questions.")}


def make_rows():
    rng = random.Random(20240917)  # Python's Mersenne Twister with an int seed: stable everywhere
    assert len(LABELS) == N_ROWS
    rows = []
    for i, ch in enumerate(LABELS):
        label = ch == "D"
        prompt = " ".join(w for w in (rng.choice(PROMPT_HEADS), rng.choice(SUBJECTS), rng.choice(VERBS),
                                      rng.choice(OBJECTS)) if w) + "?"
        completion = " " + rng.choice(GOOD if label else BAD)
        if i in LONG_ROWS:
            prompt, completion = LONG_ROWS[i]
        if i == EOS_TEXT_ROW:
            completion += "<|end_of_text|>"
        assert 3 <= len(prompt.split()) <= 12 and 1 <= len(completion.split()) <= 10
        rows.append({"prompt": prompt, "completion": completion, "label": label})
    return rows


# ---------------------------------------------------------------------------------------------


def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=1) + "\n")


def clean_adapter_dir(d):
    """Keep adapter_config.json + adapter_model.safetensors, with a repo-relative base path."""
    for f in d.iterdir():
        if f.name not in ("adapter_config.json", "adapter_model.safetensors"):
            f.unlink()
    cfg_path = d / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = MODEL_REL
    if isinstance(cfg.get("target_modules"), list):  # PEFT stores a set: order varies run to run
        cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def save_adapter(model, d):
    if d.exists():
        shutil.rmtree(d)
    model.save_pretrained(str(d))
    clean_adapter_dir(d)


def adapter_key(param_name):
    # PeftModel parameter name -> key in adapter_model.safetensors
    return param_name.replace(".default.", ".")


def run_variant(name, extra, rows, tok_path, out_dir):
    vdir = out_dir / name
    vdir.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tok_path))
    model = AutoModelForCausalLM.from_pretrained(str(MODEL), attn_implementation="eager", dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    dataset = Dataset.from_list(rows)

    with tempfile.TemporaryDirectory() as tmp:
        args = KTOConfig(output_dir=tmp, **COMMON, **extra)
        torch.manual_seed(LORA_SEED)
        trainer = KTOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=lora)
        pm = trainer.model
        assert isinstance(pm, peft.PeftModel) and trainer.ref_model is None
        gen = torch.Generator().manual_seed(B_SEED)
        with torch.no_grad():
            for pname, p in pm.named_parameters():
                if "lora_B" in pname:
                    p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * B_STD)
        save_adapter(pm, vdir / "adapter_init")

        cfg_record = {k: v for k, v in {**COMMON, **extra}.items()
                      if k not in ("report_to", "use_cpu", "bf16", "fp16", "dataloader_num_workers",
                                   "dataloader_pin_memory")}
        cfg_record.update(
            loss_type=args.loss_type, desirable_weight=args.desirable_weight,
            undesirable_weight=args.undesirable_weight, optim=str(args.optim.value if hasattr(args.optim, "value") else args.optim),
            adam_beta1=args.adam_beta1, adam_beta2=args.adam_beta2, adam_epsilon=args.adam_epsilon,
            train_sampling_strategy=args.train_sampling_strategy,
            precompute_ref_log_probs=args.precompute_ref_log_probs,
            lora=dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS),
            lora_init=dict(lora_A=f"PEFT default after torch.manual_seed({LORA_SEED})",
                           lora_B=f"N(0, {B_STD}^2) from torch.Generator().manual_seed({B_SEED})"),
            model=MODEL_REL, data="tests/fixtures/kto_steps/train.jsonl", dtype="float32", device="cpu",
        )
        write_json(vdir / "kto_config.json", cfg_record)

        if args.precompute_ref_log_probs:
            td = trainer.train_dataset
            rec = {"ref_logps": [float(x) for x in td["ref_logps"]]}
            if "ref_KL_logps" in td.column_names:
                rec["ref_KL_logps"] = [float(x) for x in td["ref_KL_logps"]]
            write_json(vdir / "ref_logps.json", rec)

        hooks = {}
        if name == "base":
            hooks = install_base_hooks(trainer, vdir)

        try:
            trainer.train()
        finally:
            if hooks:
                hooks["restore"]()
        if hooks:
            assert hooks["grads_done"] and hooks["batch_done"], hooks

        hist = [dict(e) for e in trainer.state.log_history if "loss" in e and "train_loss" not in e]
        summary = [e for e in trainer.state.log_history if "train_loss" in e]
        assert [e["step"] for e in hist] == list(range(1, COMMON["max_steps"] + 1)), hist
        if hooks:  # grad_norm is logged before clipping: it must be the norm of the captured grads
            assert abs(hooks["grad_norm_check"] - hist[0]["grad_norm"]) < 1e-5 * hist[0]["grad_norm"], (
                hooks["grad_norm_check"], hist[0]["grad_norm"])
        write_json(vdir / "log_history.json",
                   {"log_history": hist, "train_loss": summary[0]["train_loss"] if summary else None})
        save_adapter(pm, vdir / "adapter_final")
    return hist


def install_base_hooks(trainer, vdir):
    """Wrap instance methods / the module-level selective_log_softmax to read values out."""
    state = {"grads_done": False, "batch_done": False}
    pm = trainer.model

    orig_clip = trainer._clip_grad_norm

    def clip_with_capture(model):
        if not state["grads_done"]:
            grads = {}
            for pname, p in pm.named_parameters():
                if p.requires_grad:
                    assert p.grad is not None, pname
                    grads[adapter_key(pname)] = p.grad.detach().to(torch.float32).clone().contiguous()
            safetensors.torch.save_file(grads, str(vdir / "grads_step1.safetensors"))
            state["grads_done"] = True
            state["grad_norm_check"] = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))
        return orig_clip(model)

    trainer._clip_grad_norm = clip_with_capture

    orig_sls = kto_mod.selective_log_softmax
    orig_kl = trainer._compute_kl_logps
    orig_loss = trainer._compute_loss
    rec = {"sls": [], "kl": [], "active": False}

    def sls_capture(logits, index):
        out = orig_sls(logits, index)
        if rec["active"]:
            rec["sls"].append((index, out))  # TRL zeroes the prompt/pad positions of `out` in place
        return out

    def kl_capture(model, batch):
        out = orig_kl(model, batch)
        if rec["active"]:
            rec["kl"].append(out.detach().clone())
        return out

    def loss_capture(model, inputs, return_outputs):
        if state["batch_done"]:
            return orig_loss(model, inputs, return_outputs)
        rec["active"] = True
        try:
            result = orig_loss(model, inputs, return_outputs)
        finally:
            rec["active"] = False
        loss = result[0] if isinstance(result, tuple) else result
        dump_batch1(trainer, inputs, rec, float(loss.detach()), vdir)
        state["batch_done"] = True
        return result

    kto_mod.selective_log_softmax = sls_capture
    trainer._compute_kl_logps = kl_capture
    trainer._compute_loss = loss_capture
    state["restore"] = lambda: setattr(kto_mod, "selective_log_softmax", orig_sls)
    return state


def dump_batch1(trainer, inputs, rec, loss, vdir):
    # Call order in KTOTrainer._compute_loss (PEFT, no precompute): policy KL (in _compute_kl_logps),
    # policy main, reference KL (in _compute_kl_logps, adapter disabled), reference main.
    assert len(rec["sls"]) == 4 and len(rec["kl"]) == 2, (len(rec["sls"]), len(rec["kl"]))
    ids = inputs["input_ids"]
    kl_ids = inputs["KL_input_ids"]
    for (index, _), target in zip(rec["sls"], [kl_ids, ids, kl_ids, ids]):
        assert torch.equal(index, target[:, 1:])
    pol_kl = rec["sls"][0][1].sum(-1)
    pol = rec["sls"][1][1].sum(-1)
    ref_kl = rec["sls"][2][1].sum(-1)
    ref = rec["sls"][3][1].sum(-1)
    assert torch.allclose(pol_kl, rec["kl"][0]) and torch.allclose(ref_kl, rec["kl"][1])
    labels = [bool(x) for x in inputs["label"]]
    beta = trainer.beta
    z = max(0.0, float((rec["kl"][0] - rec["kl"][1]).mean()))
    # Independent check of TRL's loss from the captured per-row values (kto loss, weights 1).
    row_losses = []
    for i, lab in enumerate(labels):
        r = float(pol[i] - ref[i])
        row_losses.append(1 - 1 / (1 + math.exp(-beta * (r - z))) if lab else 1 - 1 / (1 + math.exp(-beta * (z - r))))
    check = sum(row_losses) / len(row_losses)
    assert abs(check - loss) < 1e-6, (check, loss)

    def rows_of(t, mask):
        out = []
        for i in range(t.shape[0]):
            n = int(mask[i].sum())
            out.append([int(x) for x in t[i, :n]])
        return out

    def prompt_lens(cmask):
        return [int(torch.argmax(cmask[i])) for i in range(cmask.shape[0])]  # first completion position

    write_json(vdir / "batch1.json", {
        "note": "first micro-batch of variant base (rows 0-3 of train.jsonl); logps are sums over "
                "completion tokens; kl = max(0, mean(policy_KL_logps - ref_KL_logps)); loss = TRL's "
                "micro-batch loss (before division by GA)",
        "rows": [0, 1, 2, 3],
        "labels": labels,
        "input_ids": rows_of(ids, inputs["attention_mask"]),
        "prompt_len": prompt_lens(inputs["completion_mask"]),
        "KL_input_ids": rows_of(kl_ids, inputs["KL_attention_mask"]),
        "KL_prompt_len": prompt_lens(inputs["KL_completion_mask"]),
        "policy_logps": [float(x) for x in pol],
        "ref_logps": [float(x) for x in ref],
        "policy_KL_logps": [float(x) for x in pol_kl],
        "ref_KL_logps": [float(x) for x in ref_kl],
        "kl": z,
        "loss": loss,
        "row_losses": row_losses,
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=OUT_DEFAULT)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    datasets.disable_caching()
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)

    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    rows = make_rows()
    with open(out / "train.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    write_json(out / "versions.json", {
        "trl": trl.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "torch": torch.__version__, "datasets": datasets.__version__,
        "accelerate": __import__("accelerate").__version__,
    })

    for name in a.variants.split(","):
        hist = run_variant(name, VARIANTS[name], rows, MODEL, out)
        print(f"{name}: " + "  ".join(f"{e['step']}:{e['loss']:.5f}/{e.get('kl', 0):.4f}" for e in hist))


if __name__ == "__main__":
    main()
