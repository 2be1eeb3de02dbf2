#!/usr/bin/env python3
"""Tiny random Hugging Face models and the outputs transformers computes for them.

Writes tests/fixtures/models/<name>/ for llama, mistral, qwen2, qwen3: the checkpoint as
`save_pretrained` writes it, a copy of the matching tokenizer fixture (when it exists),
expected.json (+ logits.bin, little-endian f32 [T, V]) and expected_text.json (text-level
greedy / score rows, only when the tokenizer exists). Also tests/fixtures/models/ops/ops.json:
op-level references (RoPE, attention, RMSNorm, SwiGLU, log-prob head) from transformers' own
functions. Deterministic: the same seeds give the same files.

Run: /work/venv/bin/python tools/reference/make_models.py [names…]   (torch CPU, transformers)
"""
import copy
import json
import math
import shutil
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from transformers import (AutoTokenizer, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "models"
TOKENIZERS = REPO / "tests" / "fixtures" / "tokenizers"
TEMPLATES = REPO / "tests" / "fixtures" / "model_templates"
VOCAB = 1024
MAX_NEW_TOKENS = 16
MIN_GAP = 1e-3

COMMON = dict(vocab_size=VOCAB, num_hidden_layers=2, max_position_embeddings=256, rms_norm_eps=1e-5,
              initializer_range=0.15, hidden_act="silu", bos_token_id=1, eos_token_id=2)

SPECS = {
    "llama": dict(
        cls=LlamaForCausalLM, tokenizer="llama3_bpe", template="llama3.jinja", dtype=torch.float32, shard="150KB",
        config=lambda: LlamaConfig(**COMMON, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                                   num_key_value_heads=2, tie_word_embeddings=False,
                                   rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0,
                                                        low_freq_factor=1.0, high_freq_factor=4.0,
                                                        original_max_position_embeddings=64))),
    "mistral": dict(
        cls=MistralForCausalLM, tokenizer="spm_bpe", template="inst.jinja", dtype=torch.float32, shard=None,
        config=lambda: MistralConfig(**COMMON, hidden_size=32, intermediate_size=96, num_attention_heads=4,
                                     num_key_value_heads=2, head_dim=8, sliding_window=8, tie_word_embeddings=False,
                                     rope_parameters=dict(rope_type="linear", rope_theta=10000.0, factor=2.0))),
    "qwen2": dict(
        cls=Qwen2ForCausalLM, tokenizer="qwen2_bpe", template="chatml.jinja", dtype=torch.bfloat16, shard=None,
        config=lambda: Qwen2Config(**COMMON, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                                   num_key_value_heads=2, tie_word_embeddings=True,
                                   rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    "qwen3": dict(
        cls=Qwen3ForCausalLM, tokenizer="qwen2_bpe", template="chatml.jinja", dtype=torch.float32, shard=None,
        config=lambda: Qwen3Config(**COMMON, hidden_size=32, intermediate_size=96, num_attention_heads=4,
                                   num_key_value_heads=2, head_dim=16, attention_bias=False,
                                   tie_word_embeddings=False,
                                   rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
}

# Packed batch: lengths 7, 1, 20 (20 > mistral's window of 8), 13.
PACKED_LENGTHS = [7, 1, 20, 13]
GREEDY_PROMPT_LENGTHS = [5, 11]
SCORE_SHAPES = [(4, 6), (1, 3), (9, 12)]  # (prompt length, completion length)
TEXT_PROMPTS = ["The quick brown fox", "Once upon a time, there was"]
TEXT_ROWS = [
    {"prompt": "Question: what is two plus two?\nAnswer:", "completion": " Four."},
    {"prompt": "Hello", "completion": " world, this is a test"},
    {"prompt": "Write a haiku about rain.", "completion": "\nSoft drops on the roof"},
]


def randomise(model, gen):
    """Norm weights and biases get random non-trivial values so a norm or bias bug shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def random_ids(gen, n, low=3):
    return torch.randint(low, VOCAB, (n,), generator=gen).tolist()


def seq_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def greedy(model, prompt, eos_ids):
    """HF greedy decoding; returns (new ids, smallest top-2 logit gap over the steps)."""
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             do_sample=False, max_new_tokens=MAX_NEW_TOKENS, eos_token_id=eos_ids,
                             pad_token_id=eos_ids[0], return_dict_in_generate=True, output_logits=True)
    new = out.sequences[0, len(prompt):].tolist()
    gaps = [float((lambda t: t[0] - t[1])(torch.topk(step[0].float(), 2).values)) for step in out.logits]
    return new, min(gaps)


def completion_logprob(model, prompt, completion):
    logits = seq_logits(model, prompt + completion)
    logp = F.log_softmax(logits, dim=-1)
    n = len(prompt)
    return float(sum(logp[n - 1 + i, tok] for i, tok in enumerate(completion)))


def tokenizer_info(spec):
    tok_dir = TOKENIZERS / spec["tokenizer"]
    if not (tok_dir / "tokenizer.json").exists():
        return None
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    return tok_dir, tok


def build_model(name, spec, seed, tok):
    config = spec["config"]()
    if tok is not None:  # bos/eos ids must agree with the tokenizer
        config.bos_token_id = tok.bos_token_id  # None when the tokenizer has no bos (Qwen)
        config.eos_token_id = tok.eos_token_id
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = spec["cls"](config).eval()
    randomise(model, torch.Generator().manual_seed(seed + 1))
    if spec["dtype"] != torch.float32:  # round the parameters (not the RoPE buffers); compute in fp32
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(spec["dtype"]).to(torch.float32))
    model.generation_config.bos_token_id = config.bos_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    return model


def eos_list(model):
    eos = model.config.eos_token_id
    return eos if isinstance(eos, list) else [eos]


def id_expectations(model, gen):
    """Packed logits, greedy continuations and scores for random id inputs."""
    seqs = [random_ids(gen, n) for n in PACKED_LENGTHS]
    logits = torch.cat([seq_logits(model, s) for s in seqs], dim=0)
    eos = eos_list(model)
    greedy_rows, min_gap = [], math.inf
    for n in GREEDY_PROMPT_LENGTHS:
        prompt = random_ids(gen, n)
        new, gap = greedy(model, prompt, eos)
        min_gap = min(min_gap, gap)
        greedy_rows.append({"prompt": prompt, "new_tokens": new})
    scores = []
    for n_prompt, n_completion in SCORE_SHAPES:
        prompt, completion = random_ids(gen, n_prompt), random_ids(gen, n_completion)
        scores.append({"prompt": prompt, "completion": completion,
                       "logprob": completion_logprob(model, prompt, completion)})
    return {"sequences": seqs, "logits_shape": list(logits.shape)}, logits, greedy_rows, scores, min_gap


def text_expectations(model, tok):
    """Text-level rows the CLI tests use: greedy text and TRL-style completion scores."""
    eos = eos_list(model)
    greedy_rows, min_gap = [], math.inf
    for text in TEXT_PROMPTS:
        prompt = tok(text)["input_ids"]
        new, gap = greedy(model, prompt, eos)
        min_gap = min(min_gap, gap)
        greedy_rows.append({"prompt": text, "prompt_ids": prompt, "new_ids": new, "text": tok.decode(new),
                            "text_skip_special": tok.decode(new, skip_special_tokens=True)})
    score_rows = []
    for row in TEXT_ROWS:
        completion = row["completion"]
        if not completion.endswith(tok.eos_token):  # TRL's standard-row rule
            completion = completion + tok.eos_token
        prompt_ids = tok(row["prompt"])["input_ids"]
        full = tok(row["prompt"] + completion)["input_ids"]
        completion_ids = full[len(prompt_ids):]
        score_rows.append({"prompt": row["prompt"], "completion": row["completion"], "prompt_ids": prompt_ids,
                           "completion_ids": completion_ids,
                           "logprob": completion_logprob(model, prompt_ids, completion_ids)})
    return {"greedy": greedy_rows, "score": score_rows}, min_gap


def check_sliding_window_matters(model, seqs):
    """The window must change the logits of the long sequence, else the fixture tests nothing."""
    if getattr(model.config, "sliding_window", None) is None:
        return
    longest = max(seqs, key=len)
    assert len(longest) > model.config.sliding_window
    with_window = seq_logits(model, longest)
    saved = model.config.sliding_window
    model.config.sliding_window = None
    without = seq_logits(model, longest)
    model.config.sliding_window = saved
    diff = float((with_window - without).abs().max())
    assert diff > 1e-3, f"sliding window has no effect on the logits (max diff {diff})"
    print(f"  sliding window changes logits by up to {diff:.3g}")


def write_model(name, spec):
    info = tokenizer_info(spec)
    tok = info[1] if info else None
    for attempt in range(20):
        seed = 1000 * (list(SPECS).index(name) + 1) + attempt
        model = build_model(name, spec, seed, tok)
        gen = torch.Generator().manual_seed(seed + 7)
        packed, logits, greedy_rows, scores, gap = id_expectations(model, gen)
        text, text_gap = text_expectations(model, tok) if tok is not None else (None, math.inf)
        if min(gap, text_gap) > MIN_GAP:
            break
        print(f"  seed {seed}: greedy top-2 gap {min(gap, text_gap):.2e} too small, reseeding")
    else:
        sys.exit(f"{name}: no seed gave greedy gaps > {MIN_GAP}")
    check_sliding_window_matters(model, packed["sequences"])
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    kwargs = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
    copy.deepcopy(model).to(spec["dtype"]).save_pretrained(str(out), **kwargs)
    if info:
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (info[0] / f).exists():
                shutil.copy(info[0] / f, out / f)
        # A chat template written for this project (tests/fixtures/model_templates), in the
        # file transformers reads first.
        shutil.copy(TEMPLATES / spec["template"], out / "chat_template.jinja")
    logits.numpy().astype("<f4").tofile(out / "logits.bin")
    expected = {"model": name, "seed": seed, "n_params": model.num_parameters(), "transformers": transformers.__version__,
                "eos_token_ids": eos_list(model), "packed": dict(packed, logits_file="logits.bin"),
                "greedy": greedy_rows, "score": scores, "min_greedy_gap": min(gap, text_gap)}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    if text is not None:
        (out / "expected_text.json").write_text(json.dumps(text, indent=1, ensure_ascii=False) + "\n")
    print(f"{name}: seed {seed}, min greedy gap {min(gap, text_gap):.3g}, tokenizer {'yes' if tok else 'no'}")


def flat(t):
    return t.reshape(-1).tolist()


def op_rope(gen):
    """apply_rotary_pos_emb with the llama fixture's llama3-scaled frequencies (scaling matters)."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
    config = LlamaConfig.from_pretrained(str(OUT / "llama"))
    rotary = LlamaRotaryEmbedding(config)
    n_heads, head_dim = 3, config.head_dim
    positions = [0, 1, 2, 7, 40, 63, 100, 255]
    x = torch.randn(1, n_heads, len(positions), head_dim, generator=gen)
    cos, sin = rotary(x, torch.tensor([positions]))
    rotated, _ = apply_rotary_pos_emb(x, x, cos, sin)
    to_rows = lambda t: t[0].transpose(0, 1).reshape(len(positions), n_heads * head_dim)  # [T, H*Dh]
    return {"config_dir": "llama", "n_heads": n_heads, "head_dim": head_dim, "positions": positions,
            "inv_freq": rotary.inv_freq.tolist(), "x": flat(to_rows(x)), "expected": flat(to_rows(rotated))}


def op_attention(gen, window):
    """transformers' eager_attention_forward per sequence, with the causal (+ sliding) mask rule."""
    from transformers.models.llama.modeling_llama import eager_attention_forward
    n_heads, n_kv, head_dim, lengths = 4, 2, 8, [5, 1, 9]
    module = torch.nn.Module()
    module.num_key_value_groups, module.training = n_heads // n_kv, False
    qs, ks, vs, outs = [], [], [], []
    for n in lengths:
        q = torch.randn(1, n_heads, n, head_dim, generator=gen)
        k, v = (torch.randn(1, n_kv, n, head_dim, generator=gen) for _ in range(2))
        i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
        visible = (j <= i) & ((j > i - window) if window else True)
        mask = torch.zeros(n, n).masked_fill(~visible, float("-inf"))[None, None]
        out, _ = eager_attention_forward(module, q, k, v, mask, scaling=head_dim ** -0.5, dropout=0.0)
        rows = lambda t: t[0].transpose(0, 1).reshape(n, -1)
        qs.append(rows(q)), ks.append(rows(k)), vs.append(rows(v)), outs.append(out[0].reshape(n, -1))
    return {"n_heads": n_heads, "n_heads_kv": n_kv, "head_dim": head_dim, "window": window, "lengths": lengths,
            "q": flat(torch.cat(qs)), "k": flat(torch.cat(ks)), "v": flat(torch.cat(vs)),
            "expected": flat(torch.cat(outs))}


def op_small(gen):
    """RMSNorm (LlamaRMSNorm), SwiGLU (ACT2FN silu * up) and the log-prob head (log_softmax gather)."""
    from transformers.activations import ACT2FN
    from transformers.models.llama.modeling_llama import LlamaRMSNorm
    norm = LlamaRMSNorm(24, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(24, generator=gen) + 0.5)
    x = torch.randn(5, 24, generator=gen) * 3
    gate, up = torch.randn(4, 10, generator=gen) * 4, torch.randn(4, 10, generator=gen)
    hidden, weight = torch.randn(6, 16, generator=gen), torch.randn(50, 16, generator=gen)
    rows, labels = [5, 0, 3, 3, 1], [7, 49, 0, 12, 30]
    logp = F.log_softmax(hidden[rows] @ weight.T, dim=-1)[torch.arange(len(rows)), labels]
    with torch.no_grad():
        return {"rms_norm": {"eps": 1e-5, "x": flat(x), "weight": flat(norm.weight), "expected": flat(norm(x))},
                "swiglu": {"gate": flat(gate), "up": flat(up), "expected": flat(ACT2FN["silu"](gate) * up)},
                "logprob_head": {"hidden": flat(hidden), "weight": flat(weight), "rows": rows, "labels": labels,
                                 "expected": flat(logp)}}


def write_ops():
    gen = torch.Generator().manual_seed(77)
    ops = {"rope": op_rope(gen), "attention": [op_attention(gen, 0), op_attention(gen, 3)], **op_small(gen)}
    (OUT / "ops").mkdir(parents=True, exist_ok=True)
    (OUT / "ops" / "ops.json").write_text(json.dumps(ops) + "\n")
    print("ops: written")


def main():
    names = sys.argv[1:] or list(SPECS)
    for name in names:
        write_model(name, SPECS[name])
    write_ops()


if __name__ == "__main__":
    main()
