#!/usr/bin/env python3
"""Outside truth for src/formats/ and src/model/config.cpp (DESIGN.md §5).

Writes, with the real libraries (safetensors.torch.save_file, transformers' save_pretrained and
config classes), small fixtures that the C++ tests read back:
  tests/fixtures/safetensors/{mixed,nometa}.safetensors + expected.json   (reader values, writer bytes)
  tests/fixtures/safetensors/sharded/ (tiny LlamaForCausalLM, 3 shards + index) + expected.json
  tests/fixtures/configs/<name>/config.json + configs/expected.json        (parsed fields, n_params,
                                                                           rotary_emb.inv_freq)
Run from the repository root:  /work/venv/bin/python tools/reference/make_safetensors.py
"""
import json
import math
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
import transformers
from transformers import (AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, Qwen2Config, Qwen3Config)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ST_DIR = os.path.join(ROOT, "tests", "fixtures", "safetensors")
CFG_DIR = os.path.join(ROOT, "tests", "fixtures", "configs")


def values_of(t):
    """Exact values as JSON numbers: floats widened to f64 (exact for every float dtype), ints as ints."""
    flat = t.reshape(-1)
    if t.dtype.is_floating_point:  # JSON has no inf/nan: those are written as strings
        return [x if math.isfinite(x) else str(x) for x in flat.to(torch.float64).tolist()]
    return [int(x) for x in flat.tolist()]


def describe(tensors, path):
    # Header order as written (= data-offset order) is the writer's sort; read it from the file.
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    order = [k for k in header if k != "__metadata__"]
    return {
        "order": order,
        "metadata": header.get("__metadata__"),
        "tensors": {name: {"dtype": header[name]["dtype"], "shape": list(t.shape), "values": values_of(t)}
                    for name, t in tensors.items()},
    }


def make_single_files():
    g = torch.Generator().manual_seed(1234)
    mixed = {
        # names chosen so that name order and dtype order disagree
        "a.u8": torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8),
        "b.f32": torch.randn(3, 4, generator=g),
        "c.bf16": torch.randn(2, 3, generator=g).to(torch.bfloat16),
        "d.i64": torch.tensor([[-(2**40), -1], [0, 2**62]], dtype=torch.int64),
        "e.f16": torch.tensor([1.0, -2.5, 65504.0, 6e-8, -0.0, float("inf")], dtype=torch.float16),
        "f.scalar": torch.tensor(3.25, dtype=torch.float32),
        "g.empty": torch.zeros(0, 5, dtype=torch.float32),
        "A.upper_bf16": torch.tensor([1.5, -0.0078125], dtype=torch.bfloat16),
        "h.i32": torch.tensor([-7, 7, 2**31 - 1], dtype=torch.int32),
        "i.bool": torch.tensor([True, False, True], dtype=torch.bool),
        "j.f64": torch.tensor([1.0 / 3.0], dtype=torch.float64),
        "k.i8": torch.tensor([-128, 5], dtype=torch.int8),
    }
    path = os.path.join(ST_DIR, "mixed.safetensors")
    save_file(mixed, path, metadata={"format": "pt"})
    nometa = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(1, dtype=torch.bfloat16)}
    path2 = os.path.join(ST_DIR, "nometa.safetensors")
    save_file(nometa, path2)
    return {"mixed.safetensors": describe(mixed, path), "nometa.safetensors": describe(nometa, path2)}


def make_sharded():
    out = os.path.join(ST_DIR, "sharded")
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out, max_shard_size="12KB")
    for extra in ("config.json", "generation_config.json"):
        os.remove(os.path.join(out, extra))
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        weight_map = json.load(f)["weight_map"]
    expected = {}
    for name, p in model.state_dict().items():
        flat = p.detach().reshape(-1).to(torch.float64)
        expected[name] = {"shard": weight_map[name], "shape": list(p.shape), "dtype": "F32",
                          "sum": float(flat.sum()), "first": [float(x) for x in flat[:4].tolist()]}
    return expected


# --- config.json fixtures -----------------------------------------------------------------------

def tiny(**kw):
    base = dict(vocab_size=96, hidden_size=64, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4)
    base.update(kw)
    return base


# Hub-style (legacy, transformers v4) configs, written by hand as the hub serves them.
LEGACY = {
    "llama32_legacy": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
        "hidden_act": "silu", "hidden_size": 128, "intermediate_size": 96, "max_position_embeddings": 131072,
        "mlp_bias": False, "num_attention_heads": 2, "num_hidden_layers": 2, "num_key_value_heads": 1,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.45.0.dev0", "use_cache": True, "vocab_size": 200,
    },
    "llama_linear_legacy": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": True, "mlp_bias": True,
        "hidden_size": 64, "intermediate_size": 40, "num_attention_heads": 4, "num_hidden_layers": 2,
        "max_position_embeddings": 8192, "rope_scaling": {"type": "linear", "factor": 4.0},
        "rope_theta": 10000.0, "rms_norm_eps": 1e-06, "vocab_size": 80, "torch_dtype": "float16",
    },
    "mistral_null_window": {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 64,
        "intermediate_size": 112, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
        "sliding_window": None, "tie_word_embeddings": False, "vocab_size": 128, "bos_token_id": 1,
        "eos_token_id": 2, "torch_dtype": "bfloat16",
    },
    "qwen25_legacy": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 64,
        "intermediate_size": 96, "max_position_embeddings": 32768, "max_window_layers": 21,
        "num_attention_heads": 4, "num_hidden_layers": 3, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "use_sliding_window": False, "vocab_size": 160,
    },
}


def current_configs():
    """Configs as the current transformers writes them (v5 form: rope_parameters, layer_types)."""
    return {
        "llama2_default": LlamaConfig(**tiny(num_key_value_heads=4)),
        "llama31_v5": LlamaConfig(**tiny(hidden_size=256, num_attention_heads=2, num_key_value_heads=1),
                                  max_position_embeddings=131072, eos_token_id=[7, 8],
                                  rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                                   "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                   "original_max_position_embeddings": 8192}),
        "llama_linear_v5": LlamaConfig(**tiny(), rope_parameters={"rope_type": "linear", "factor": 2.0,
                                                                  "rope_theta": 20000.0}),
        "mistral_window": MistralConfig(**tiny(num_key_value_heads=2, head_dim=32), sliding_window=8),
        "qwen2_tied_window": Qwen2Config(**tiny(num_key_value_heads=2), tie_word_embeddings=True,
                                         use_sliding_window=True, sliding_window=16, max_window_layers=2,
                                         eos_token_id=5),
        "qwen3": Qwen3Config(**tiny(num_key_value_heads=2, head_dim=32), attention_bias=False,
                             rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                             eos_token_id=5, bos_token_id=None),
        "qwen3_bias": Qwen3Config(**tiny(num_key_value_heads=1, head_dim=16), attention_bias=True),
    }


def expected_for(directory):
    """What transformers itself makes of DIR/config.json: the built model is the truth."""
    cfg = AutoConfig.from_pretrained(directory)
    model = AutoModelForCausalLM.from_config(cfg)
    layers = model.model.layers
    attn = layers[0].self_attn
    head_dim = attn.head_dim
    windows = []
    for layer in layers:
        w = getattr(layer.self_attn, "sliding_window", getattr(cfg, "sliding_window", None))
        windows.append(int(w or 0))
    eos = cfg.eos_token_id
    eos = [] if eos is None else (list(eos) if isinstance(eos, (list, tuple)) else [eos])
    return {
        "model_type": cfg.model_type,
        "head_dim": int(head_dim),
        "n_heads_kv": int(attn.k_proj.out_features // head_dim),
        "qkv_bias": attn.q_proj.bias is not None,
        "o_bias": attn.o_proj.bias is not None,
        "mlp_bias": layers[0].mlp.gate_proj.bias is not None,
        "qk_norm": hasattr(attn, "q_norm"),
        "tie_word_embeddings": model.lm_head.weight is model.model.embed_tokens.weight,
        "layer_window": windows,
        "eos_token_ids": eos,
        "bos_token_id": cfg.bos_token_id,
        "max_position_embeddings": cfg.max_position_embeddings,
        "rms_norm_eps": cfg.rms_norm_eps,
        "n_params": sum(p.numel() for p in model.parameters()),
        "inv_freq": [float(x) for x in model.model.rotary_emb.inv_freq.tolist()],
    }


def make_configs():
    expected = {}
    for name, cfg in current_configs().items():
        d = os.path.join(CFG_DIR, name)
        shutil.rmtree(d, ignore_errors=True)
        cfg.save_pretrained(d)
        expected[name] = expected_for(d)
    for name, raw in LEGACY.items():
        d = os.path.join(CFG_DIR, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(raw, f, indent=2)
        expected[name] = expected_for(d)
    gen = {"bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128008, 128009],
           "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.45.0.dev0"}
    with open(os.path.join(CFG_DIR, "llama32_legacy", "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
    return expected


def main():
    torch.set_default_dtype(torch.float32)
    os.makedirs(ST_DIR, exist_ok=True)
    os.makedirs(CFG_DIR, exist_ok=True)
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    single = make_single_files()
    single["sharded"] = make_sharded()
    single["versions"] = versions
    with open(os.path.join(ST_DIR, "expected.json"), "w") as f:
        json.dump(single, f, indent=1)
    cfgs = make_configs()
    cfgs["versions"] = versions
    with open(os.path.join(CFG_DIR, "expected.json"), "w") as f:
        json.dump(cfgs, f, indent=1)
    print("wrote", ST_DIR, "and", CFG_DIR, file=sys.stderr)


if __name__ == "__main__":
    main()
