#!/usr/bin/env python3
"""SFT loss, TRL's mean_token_accuracy / entropy and every parameter's gradient, from transformers.

Builds two tiny random models (saved with `save_pretrained` into tests/fixtures/sft/<name>/model):
  llama_bias: Llama with GQA, attention_bias and mlp_bias (every projection has a bias), untied head;
  qwen3_tied: Qwen3 with q/k norms and tie_word_embeddings (the head's gradient lands in the embedding).
Norm weights and biases get random values so that a wrong norm or bias gradient shows.

Three {prompt, completion} sequences (prompt lengths 5, 1, 6; every other completion token the
model's own greedy choice, so the accuracy is far from 0) form one micro-batch. The loss is the
one transformers' Trainer computes for SFTTrainer with completion-only labels (-100 on prompt
positions): each sequence's `model(input_ids, labels=labels, num_items_in_batch=N).loss` (HF's
ForCausalLMLoss: summed next-token NLL / num_items_in_batch), N = completion tokens of the whole
micro-batch, summed over the sequences, i.e. the mean NLL over the micro-batch's completion tokens.
Metrics as TRL 1.9's SFTTrainer.compute_loss: mean_token_accuracy = correct argmax predictions /
completion tokens; entropy = mean per-token entropy over completion tokens. Gradients: .grad of
every named parameter after loss.backward(), into grads.bin (little-endian f32, offsets in
expected.json), named as the state dict names them.

Run: /work/venv/bin/python tools/reference/make_sft_grads.py   (torch CPU, transformers)
"""
import json
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "sft"
COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, initializer_range=0.2,
              bos_token_id=1, eos_token_id=2)
SPECS = {
    "llama_bias": dict(cls=LlamaForCausalLM, seed=21,
                       config=lambda: LlamaConfig(**COMMON, attention_bias=True, mlp_bias=True, tie_word_embeddings=False)),
    "qwen3_tied": dict(cls=Qwen3ForCausalLM, seed=22,
                       config=lambda: Qwen3Config(**COMMON, head_dim=8, tie_word_embeddings=True)),
}
SHAPES = [(5, 7), (1, 4), (6, 9)]  # (prompt, completion) lengths


def build(spec):
    config = spec["config"]()
    config._attn_implementation = "eager"
    torch.manual_seed(spec["seed"])
    model = spec["cls"](config)
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    model.train()  # dropout is 0 in these configs; train mode as the Trainer runs it
    return model


def sequence(model, gen, n_prompt, n_completion):
    """A random prompt; every other completion token is the model's own argmax (so accuracy is not ~0)."""
    ids = torch.randint(3, model.config.vocab_size, (n_prompt,), generator=gen).tolist()
    for i in range(n_completion):
        if i % 2 == 0:
            with torch.no_grad():
                ids.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
        else:
            ids.append(int(torch.randint(3, model.config.vocab_size, (1,), generator=gen)))
    return ids


def trl_metrics(logits, labels):
    """TRL 1.9 SFTTrainer.compute_loss (non-chunked path): accuracy and entropy over label != -100."""
    shift_logits, shift_labels = logits[..., :-1, :], labels[..., 1:]
    logp = torch.log_softmax(shift_logits, dim=-1)
    per_token_entropy = -(logp.exp() * logp).sum(-1)
    mask = shift_labels != -100
    correct = ((shift_logits.argmax(dim=-1) == shift_labels) & mask).sum()
    return int(correct), int(mask.sum()), float((per_token_entropy * mask).sum())


def write(name, spec):
    model = build(spec)
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model.save_pretrained(str(out / "model"))
    gen = torch.Generator().manual_seed(spec["seed"] + 2)
    seqs = [sequence(model, gen, p, c) for p, c in SHAPES]
    n_prompt = [p for p, _ in SHAPES]
    n_items = sum(c for _, c in SHAPES)
    model.zero_grad()
    loss, correct, total, entropy_sum = 0.0, 0, 0, 0.0
    for ids, n in zip(seqs, n_prompt):
        input_ids = torch.tensor([ids])
        labels = input_ids.clone()
        labels[0, :n] = -100
        outputs = model(input_ids=input_ids, labels=labels, num_items_in_batch=torch.tensor(n_items))
        loss = loss + outputs.loss
        with torch.no_grad():
            c, t, e = trl_metrics(outputs.logits.float(), labels)
        correct, total, entropy_sum = correct + c, total + t, entropy_sum + e
    assert total == n_items
    loss.backward()
    grads, blobs, offset = [], [], 0
    for pname, p in model.named_parameters():
        g = p.grad.detach().float().contiguous().numpy().astype("<f4")
        assert float(np.abs(g).max()) > 0, f"{pname}: zero gradient"
        grads.append({"name": pname, "shape": list(g.shape), "offset": offset})
        blobs.append(g.reshape(-1))
        offset += g.size
    np.concatenate(blobs).tofile(out / "grads.bin")
    expected = {"model": name, "transformers": transformers.__version__, "torch": torch.__version__,
                "sequences": seqs, "n_prompt": n_prompt, "num_items_in_batch": n_items, "loss": float(loss.detach()),
                "mean_token_accuracy": correct / total, "n_correct": correct, "entropy": entropy_sum / total,
                "grads_file": "grads.bin", "grads": grads}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"{name}: loss {float(loss.detach()):.6f}, accuracy {correct}/{total}, {len(grads)} gradient tensors")


def main():
    for name, spec in SPECS.items():
        write(name, spec)


if __name__ == "__main__":
    main()
