#!/usr/bin/env python3
"""NF4 (bitsandbytes 4-bit) fixtures, produced by bitsandbytes itself on CPU.

Writes tests/fixtures/nf4/:
  quant.safetensors   per case <c>: <c>.weight (the input, f32 or bf16), and for both
                      compress_statistics (double quant) settings, prefix <c>.plain. / <c>.dq.:
                      packed (U8 [numel/2], bnb nibble order), absmax (F32, or U8 codes when
                      nested), nested_absmax, nested_quant_map, offset (F32 [1]), absmax_f32 (the
                      dequantised absmax, nested only) and dequant (bnb.functional.dequantize_4bit
                      output, in the input's dtype; omitted for the large case)
  cases.json          case names, shapes, dtypes, bitsandbytes / torch versions
  qwen2-bnb-4bit/     tests/fixtures/models/qwen2 loaded by transformers with
                      BitsAndBytesConfig(load_in_4bit, nf4, double quant, compute bf16) and saved by
                      save_pretrained (the layout of a hub "-bnb-4bit" checkpoint)
  qwen2-bnb-4bit-expected.safetensors
                      q_proj0: bnb's dequantize_4bit of layer 0's q_proj as loaded back (BF16);
                      logits: f32 [T, V] of transformers' Qwen2 in float32 whose projections are the
                      bnb-dequantised weights (what the 4-bit model computes with fp32 compute);
                      tokens: I64 [T]

Run: /work/venv/bin/python tools/reference/make_nf4.py   (torch CPU, transformers, bitsandbytes)
"""
import json
import shutil
from pathlib import Path

import bitsandbytes as bnb
import bitsandbytes.functional as F
import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "nf4"
QWEN2 = REPO / "tests" / "fixtures" / "models" / "qwen2"

# name: (shape, dtype, store dequant output)
CASES = {
    "square": ((8, 64), torch.float32, True),       # whole blocks, one per row
    "ragged": ((24, 70), torch.float32, True),      # K % 64 != 0: blocks straddle rows, last block partial
    "odd": ((5, 7), torch.float32, True),           # odd numel: the last byte's low nibble is padding
    "large": ((64, 260), torch.bfloat16, False),    # 260 blocks: two nested (256) absmax blocks; the
                                                    # weight is not stored but made by large_weight()
}


def large_weight(shape):
    """Exactly representable bf16 values from an integer hash (the C++ test rebuilds them):
    w[i] = ((h(i) >> 24) - 128) / 1024 with h(i) = i * 2654435761 mod 2^32, times 16 when i % 97 == 0."""
    i = torch.arange(shape[0] * shape[1], dtype=torch.int64)
    h = (i * 2654435761) % (1 << 32)
    w = ((h >> 24) - 128).double() / 1024.0
    w = torch.where(i % 97 == 0, w * 16.0, w)
    return w.reshape(shape).to(torch.bfloat16)


def make_weight(name, shape, dtype, gen):
    if name == "large":
        return large_weight(shape)
    w = torch.randn(shape, generator=gen) * 0.05
    if name == "ragged":
        w[3] = 0.0                      # an all-zero row: blocks with absmax from neighbours only
        w[0, :64] = 0.0                 # one block entirely zero (absmax 0)
        w[7, 5] = 1.5                   # an outlier
        w[9, :] = w[9, :] * 40.0        # a row of large values
    if name == "odd":
        w[0, 0] = -0.3
    return w.to(dtype)


def quant_case(name, w, with_dequant):
    out = {} if name == "large" else {f"{name}.weight": w.contiguous()}
    for prefix, nested in (("plain", False), ("dq", True)):
        packed, state = F.quantize_4bit(w, blocksize=64, compress_statistics=nested, quant_type="nf4")
        p = f"{name}.{prefix}."
        out[p + "packed"] = packed.reshape(-1).contiguous()
        out[p + "absmax"] = state.absmax.contiguous()
        if nested:
            out[p + "nested_absmax"] = state.state2.absmax.contiguous()
            out[p + "nested_quant_map"] = state.state2.code.contiguous()
            out[p + "offset"] = state.offset.reshape(1).float()
            absmax = F.dequantize_blockwise(state.absmax, state.state2) + state.offset
            out[p + "absmax_f32"] = absmax.float().contiguous()
        if with_dequant:
            out[p + "dequant"] = F.dequantize_4bit(packed, state).contiguous()
    return out


def make_checkpoint():
    target = OUT / "qwen2-bnb-4bit"
    if target.exists():
        shutil.rmtree(target)
    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(QWEN2, quantization_config=config, device_map="cpu",
                                                 dtype=torch.bfloat16)
    model.save_pretrained(target)

    # Load it back as a user would, dequantise every Linear4bit with bnb, run fp32 transformers.
    loaded = AutoModelForCausalLM.from_pretrained(target, device_map="cpu", dtype=torch.bfloat16)
    dense = AutoModelForCausalLM.from_pretrained(QWEN2, device_map="cpu", dtype=torch.float32)
    q_proj0 = None
    with torch.no_grad():
        for name, module in loaded.named_modules():
            if isinstance(module, bnb.nn.Linear4bit):
                w = F.dequantize_4bit(module.weight.data, module.weight.quant_state)
                dense.get_submodule(name).weight.copy_(w.float())
                if name == "model.layers.0.self_attn.q_proj":
                    q_proj0 = w.contiguous()
    tokens = torch.tensor([[5, 17, 300, 999, 42, 7]])
    with torch.no_grad():
        logits = dense(tokens).logits[0].float().contiguous()
    save_file({"q_proj0": q_proj0, "logits": logits, "tokens": tokens[0].contiguous()},
              OUT / "qwen2-bnb-4bit-expected.safetensors")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    tensors, cases = {}, {}
    for name, (shape, dtype, with_dequant) in CASES.items():
        w = make_weight(name, shape, dtype, gen)
        tensors.update(quant_case(name, w, with_dequant))
        cases[name] = {"shape": list(shape), "dtype": str(dtype).replace("torch.", ""), "dequant": with_dequant}
    save_file(tensors, OUT / "quant.safetensors")
    (OUT / "cases.json").write_text(json.dumps({
        "bitsandbytes": bnb.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
        "blocksize": 64, "nested_blocksize": 256, "cases": cases}, indent=2) + "\n")
    make_checkpoint()


if __name__ == "__main__":
    main()
