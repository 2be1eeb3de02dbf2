#!/usr/bin/env python3
"""Fixtures for kto's GGUF export and merge tests, produced only by outside tools:

* tests/fixtures/gguf/quant/: a 8x512 f32 test matrix and what ggml's own quantizer
  (ggml_quantize_chunk of the llama_cpp package's libggml-base, no importance matrix: the call
  llama_model_quantize makes) turns it into for q8_0, q5_0, q5_1, q4_K, q5_K, q6_K.
* tests/fixtures/gguf/<arch>_<outtype>.json: every metadata key (type, FNV-1a-64 of its raw value
  bytes, scalar values in clear) and every tensor (ggml type, ne, FNV of its bytes) of the GGUF
  that llama.cpp's convert_hf_to_gguf.py writes for tests/fixtures/models/<arch> (f16, q8_0), and
  for q4_k_m / q5_k_m / q6_k of what llama_model_quantize makes of its f32 conversion.
  convert_hf_to_gguf picks tokenizer.ggml.pre by hashing the token ids of a probe text, which
  cannot know these tiny test tokenizers; it is told the name matching their pre-tokenizer regex.
* tests/fixtures/merge/<arch>/adapter/: PEFT LoRA adapters with random (non-zero) A and B;
  qwen3's is rsLoRA. tests/fixtures/merge/<arch>/expected.json + logits.bin: the base model with
  the adapter merged by PEFT's merge_and_unload (fp32): FNV-1a of every merged tensor (f32 bytes,
  and bf16 bytes as torch's .to(bfloat16) rounds them) and its logits for two sequences.
* tests/fixtures/gguf/lora_<arch>.json: the GGUF of convert_lora_to_gguf.py (--outtype f32)
  for those adapters, hashed the same way.

Run: /work/venv/bin/python tools/reference/make_gguf_fixtures.py   (needs torch, transformers,
peft, llama-cpp-python, and the llama.cpp source tree: $LLAMA_CPP_DIR, see gguf_common.py)
"""
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_common import GGML_TYPES, GGUF_FIX, MERGE_FIX, MODELS, Gguf, fnv1a64, ggml_lib, llama_cpp_source  # noqa: E402

ARCHS = ["llama", "mistral", "qwen2", "qwen3"]
PRE = {"llama": "llama-bpe", "qwen2": "qwen2", "qwen3": "qwen2", "mistral": "default"}
QUANT_TYPES = ["q8_0", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K"]
FTYPES = {"q8_0": 7, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
# Keys that describe the file rather than the model (names derived from the directory).
INFO_KEYS = ("general.name", "general.basename", "general.size_label", "general.finetune", "general.version")

RUNNER = r"""
import runpy, sys
src, pre = sys.argv[1], sys.argv[2]
sys.argv = [src + '/' + sys.argv[3]] + sys.argv[4:]
sys.path.insert(0, src)
sys.path.insert(0, src + '/gguf-py')
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: pre
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def run_convert(script, pre, args):
    src = llama_cpp_source()
    subprocess.run([sys.executable, "-c", RUNNER, str(src), pre, script, *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def describe(path, skip_info=True):
    g = Gguf(path)
    kv = {}
    for k in g.kv_order:
        vtype, raw, value = g.kv[k]
        if skip_info and k in INFO_KEYS:
            continue
        entry = {"type": vtype, "fnv": fnv1a64(raw)}
        if vtype != 9:
            entry["value"] = value
        else:
            entry["count"] = len(value)
        kv[k] = entry
    tensors = {n: {"type": g.tensors[n][0], "ne": g.tensors[n][1], "fnv": fnv1a64(g.tensors[n][2])}
               for n in g.tensor_order}
    return {"kv": kv, "tensors": tensors}


def quant_matrix():
    """8 rows x 512: gaussian, heavy tails, an all-zero row, a constant row, tiny values, one outlier."""
    rng = np.random.default_rng(1234)
    m = rng.standard_normal((8, 512)).astype(np.float32) * 0.05
    m[1] = rng.standard_t(2, 512).astype(np.float32) * 0.02
    m[2] = 0.0
    m[3] = 0.37
    m[4] = (rng.standard_normal(512) * 1e-6).astype(np.float32)
    m[5, 17] = 3.0
    m[6] = np.abs(m[6])  # all positive: k-quant min of 0
    m[7, :256] = -np.abs(m[7, :256])
    return m


def write_quant_fixtures():
    lib = ggml_lib()
    out = GGUF_FIX / "quant"
    out.mkdir(parents=True, exist_ok=True)
    m = np.ascontiguousarray(quant_matrix())
    m.tofile(out / "matrix.f32")
    for name in QUANT_TYPES:
        buf = ctypes.create_string_buffer(m.size * 4)
        n = lib.ggml_quantize_chunk(GGML_TYPES[name], m.ctypes.data, buf, 0, m.shape[0], m.shape[1], None)
        (out / f"{name}.bin").write_bytes(buf.raw[:n])
    print(f"quant: {len(QUANT_TYPES)} types of an {m.shape} matrix")


def llama_quantize(src, dst, ftype):
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    assert rc == 0, f"llama_model_quantize failed for {src}"


def write_model_fixtures(tmp):
    for arch in ARCHS:
        for outtype in ("f32", "f16", "bf16", "q8_0"):
            path = tmp / f"{arch}_{outtype}.gguf"
            run_convert("convert_hf_to_gguf.py", PRE[arch], [MODELS / arch, "--outtype", outtype, "--outfile", path])
            if outtype != "f32":
                (GGUF_FIX / f"{arch}_{outtype}.json").write_text(json.dumps(describe(path), indent=1) + "\n")
        for name in ("q4_k_m", "q5_k_m", "q6_k"):
            path = tmp / f"{arch}_{name}.gguf"
            llama_quantize(tmp / f"{arch}_f32.gguf", path, FTYPES[name])
            d = describe(path)
            (GGUF_FIX / f"{arch}_{name}.json").write_text(json.dumps({"tensors": d["tensors"]}, indent=1) + "\n")
        print(f"{arch}: convert_hf_to_gguf f16/bf16/q8_0, llama_model_quantize q4_k_m/q5_k_m/q6_k")


def make_adapter(arch, out_dir, rslora):
    """A PEFT LoRA adapter on all seven projections with random A and B (seeded)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(4242 + ARCHS.index(arch))
    base = AutoModelForCausalLM.from_pretrained(MODELS / arch, dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                        "down_proj"], use_rslora=rslora, init_lora_weights=False)
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn_like(p) * 0.2)
    model.peft_config["default"].base_model_name_or_path = f"tests/fixtures/models/{arch}"
    shutil.rmtree(out_dir, ignore_errors=True)
    model.save_pretrained(out_dir)
    (Path(out_dir) / "README.md").unlink(missing_ok=True)  # PEFT's model card; not needed to load
    return model


def write_merge_fixtures(tmp):
    for arch in ARCHS:
        rslora = arch == "qwen3"
        out = MERGE_FIX / arch
        model = make_adapter(arch, out / "adapter", rslora)
        gen = torch.Generator().manual_seed(99)
        seqs = [torch.randint(3, 1024, (n,), generator=gen).tolist() for n in (4, 7)]
        merged = model.merge_and_unload().eval()
        with torch.no_grad():
            logits = torch.cat([merged(torch.tensor([s])).logits[0] for s in seqs]).float()
        logits.numpy().astype("<f4").tofile(out / "logits.bin")
        # FNV-1a of every merged tensor as save_pretrained would write it in f32 and in bf16.
        state = {k: v for k, v in merged.state_dict().items()
                 if not (k == "lm_head.weight" and merged.config.tie_word_embeddings)}
        hashes = {k: {"f32": fnv1a64(v.contiguous().numpy().astype("<f4").tobytes()),
                      "bf16": fnv1a64(v.to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes())}
                  for k, v in state.items()}
        (out / "expected.json").write_text(json.dumps({"sequences": seqs, "logits_shape": list(logits.shape),
                                                       "rslora": rslora, "merged_fnv": hashes}, indent=1) + "\n")
        lora_path = tmp / f"lora_{arch}.gguf"
        run_convert("convert_lora_to_gguf.py", PRE[arch], [out / "adapter", "--base", MODELS / arch, "--outtype", "f32",
                                                            "--outfile", lora_path])
        (GGUF_FIX / f"lora_{arch}.json").write_text(json.dumps(describe(lora_path), indent=1) + "\n")
        print(f"{arch}: adapter (rslora={rslora}), merged logits {tuple(logits.shape)}, convert_lora_to_gguf")


def main():
    GGUF_FIX.mkdir(parents=True, exist_ok=True)
    what = sys.argv[1:] or ["quant", "models", "merge"]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if "quant" in what:
            write_quant_fixtures()
        if "models" in what:
            write_model_fixtures(tmp)
        if "merge" in what:
            write_merge_fixtures(tmp)


if __name__ == "__main__":
    main()
