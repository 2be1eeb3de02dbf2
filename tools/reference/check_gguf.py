#!/usr/bin/env python3
"""Outside checks of kto's GGUF export and merge (DESIGN.md §5: llama.cpp and transformers/PEFT
are the truth). Not run by CI (no Python there); the C++ tests check the committed fixtures.

  logits    kto export gguf --outtype f16 of each fixture model, loaded by llama.cpp
            (llama-cpp-python): next-token logits at every position of 10 prompts vs transformers.
  tokens    llama.cpp's tokenisation with our GGUF's tokenizer metadata vs the HF tokenizer.
  quant     kto's q8_0 / q4_k_m / q5_k_m / q6_k GGUF vs llama_model_quantize of kto's f32 GGUF:
            tensor types and bytes, and the gguf package's dequantisation of both.
  kquant    the same on two random models 256 wide (the fixtures are too narrow for k-quant
            blocks, every tensor falls back to q5_0/q5_1/q8_0 there), plus q4_k_m logits.
  lora      kto export gguf-lora of the fixture adapters applied by llama.cpp vs PEFT's logits.
  merge     kto merge --dtype f32, loaded by transformers, vs PEFT base + adapter logits.
  kto       a real KTO result (kto train examples/train_tiny.yaml): its merged f16/f32 GGUF in
            llama.cpp and its merged checkpoint in transformers vs PEFT base + trained adapter.

Run: /work/venv/bin/python tools/reference/check_gguf.py [checks…]   (KTO_BINARY=path/to/kto)
"""
import ctypes
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_common import KTO, MERGE_FIX, MODELS, Gguf  # noqa: E402

ARCHS = ["llama", "mistral", "qwen2", "qwen3"]
TEXTS = ["Hello world", "The quick brown fox jumps over the lazy dog.", "  spaces\tand\nnewlines  ",
         "numbers 12345 and 3.14", "café naïve 日本語", "<|im_start|>user\nhi<|im_end|>", "a"]


def kto(*args):
    subprocess.run([str(KTO), "-q", *map(str, args)], check=True)


def prompts(arch, n=10):
    gen = torch.Generator().manual_seed(7)
    longest = 8 if arch == "mistral" else 24  # mistral: llama.cpp's llama arch has no sliding window (8)
    return [torch.randint(3, 1000, (int(torch.randint(2, longest + 1, (1,), generator=gen)),), generator=gen).tolist()
            for _ in range(n)]


def hf_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def llama_logits(llm, ids):
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[:len(ids)], dtype=np.float32)


def load_llama(path, lora=None):
    from llama_cpp import Llama
    kw = {"lora_path": str(lora)} if lora else {}
    # f32 KV cache (type 0) so that an f32 GGUF can be compared at fp32 precision.
    return Llama(model_path=str(path), n_ctx=256, n_batch=256, logits_all=True, verbose=False, n_threads=1, seed=0,
                 type_k=0, type_v=0, flash_attn=False, **kw)


def check_logits(tmp):
    from transformers import AutoModelForCausalLM
    worst = {}
    for arch in ARCHS:
        hf = AutoModelForCausalLM.from_pretrained(MODELS / arch, dtype=torch.float32).eval()
        for outtype in ("f16", "f32"):
            path = tmp / f"{arch}-{outtype}.gguf"
            kto("export", "gguf", "-m", MODELS / arch, "--outtype", outtype, "-o", path)
            llm = load_llama(path)
            diffs, scale = [], []
            for ids in prompts(arch):
                a, b = hf_logits(hf, ids), llama_logits(llm, ids)
                diffs.append(float(np.abs(a - b).max()))
                scale.append(float(np.abs(a).max()))
            worst[(arch, outtype)] = max(diffs)
            print(f"logits {arch:8s} {outtype}: max |llama.cpp - transformers fp32| over all positions of 10 prompts = "
                  f"{max(diffs):.4g} (max |logit| {max(scale):.3g}, mean of per-prompt max {np.mean(diffs):.3g})")
    return worst


def check_tokens(tmp):
    from transformers import AutoTokenizer
    for arch in ARCHS:
        path = tmp / f"{arch}-f16.gguf"
        if not path.exists():
            kto("export", "gguf", "-m", MODELS / arch, "--outtype", "f16", "-o", path)
        tok = AutoTokenizer.from_pretrained(MODELS / arch)
        from llama_cpp import Llama
        llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
        bad = 0
        for text in TEXTS:
            ref = tok(text)["input_ids"]
            ours = llm.tokenize(text.encode(), add_bos=True, special=True)
            if ref != ours:
                bad += 1
                print(f"  tokens {arch}: {text!r}: transformers {ref} llama.cpp {ours}")
        print(f"tokens {arch:8s}: {len(TEXTS) - bad}/{len(TEXTS)} texts tokenised identically")


def check_quant(tmp):
    import llama_cpp
    from gguf import GGUFReader
    from gguf.quants import dequantize
    ftypes = {"q8_0": 7, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
    for arch in ARCHS:
        f32 = tmp / f"{arch}-f32.gguf"
        kto("export", "gguf", "-m", MODELS / arch, "--outtype", "f32", "-o", f32)
        for name, ftype in ftypes.items():
            ours, ref = tmp / f"{arch}-{name}.gguf", tmp / f"{arch}-{name}-llama.gguf"
            kto("export", "gguf", "-m", MODELS / arch, "--outtype", name, "-o", ours)
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype, params.nthread = ftype, 1
            assert llama_cpp.llama_model_quantize(str(f32).encode(), str(ref).encode(), ctypes.byref(params)) == 0
            a, b = Gguf(ours), Gguf(ref)
            same_bytes = sum(a.tensors[n] == b.tensors[n] for n in b.tensors)
            type_diff = [n for n in b.tensors if a.tensors[n][0] != b.tensors[n][0]]
            ra, rb = GGUFReader(ours), GGUFReader(ref)
            ta = {t.name: t for t in ra.tensors}
            max_deq = 0.0
            for t in rb.tensors:
                x = dequantize(t.data, t.tensor_type)
                y = dequantize(ta[t.name].data, ta[t.name].tensor_type)
                max_deq = max(max_deq, float(np.abs(np.asarray(x, np.float32) - np.asarray(y, np.float32)).max()))
            types = sorted({b.tensors[n][0] for n in b.tensors})
            print(f"quant {arch:8s} {name:7s}: {same_bytes}/{len(b.tensors)} tensors bit-identical to "
                  f"llama_model_quantize, type mismatches {type_diff or 'none'}, max |dequant diff| {max_deq:.3g}, "
                  f"ggml types used {types}")


def wide_models(tmp):
    """Random llama (untied) and qwen2 (tied) models with 256 columns, so that k-quants apply."""
    import shutil
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    common = dict(vocab_size=1024, hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5)
    out = {}
    for arch, cls, cfg in (("llama", LlamaForCausalLM, LlamaConfig(**common, tie_word_embeddings=False, bos_token_id=1000,
                                                                    eos_token_id=1001)),
                           ("qwen2", Qwen2ForCausalLM, Qwen2Config(**common, tie_word_embeddings=True, eos_token_id=1002))):
        torch.manual_seed(5)
        d = tmp / f"wide-{arch}"
        cls(cfg).save_pretrained(d)
        for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
            shutil.copy(MODELS / arch / f, d / f)
        out[arch] = d
    return out


def check_kquant(tmp):
    import llama_cpp
    from transformers import AutoModelForCausalLM
    ftypes = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
    for arch, d in wide_models(tmp).items():
        f32 = tmp / f"wide-{arch}-f32.gguf"
        kto("export", "gguf", "-m", d, "--outtype", "f32", "-o", f32)
        hf = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        for name, ftype in ftypes.items():
            ours, ref = tmp / f"wide-{arch}-{name}.gguf", tmp / f"wide-{arch}-{name}-llama.gguf"
            kto("export", "gguf", "-m", d, "--outtype", name, "-o", ours)
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype, params.nthread = ftype, 1
            assert llama_cpp.llama_model_quantize(str(f32).encode(), str(ref).encode(), ctypes.byref(params)) == 0
            a, b = Gguf(ours), Gguf(ref)
            same = sum(a.tensors[n] == b.tensors[n] for n in b.tensors)
            types = {n: b.tensors[n][0] for n in b.tensors if b.tensors[n][0] != 0}
            llm = load_llama(ours)
            diffs = [float(np.abs(hf_logits(hf, ids) - llama_logits(llm, ids)).max()) for ids in prompts(arch)]
            print(f"kquant {arch:6s} {name:7s}: {same}/{len(b.tensors)} tensors bit-identical to llama_model_quantize; "
                  f"ggml types {sorted(set(types.values()))}; llama.cpp logits vs transformers fp32 max |diff| "
                  f"{max(diffs):.3g}")


def check_lora(tmp):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    for arch in ARCHS:
        adapter = MERGE_FIX / arch / "adapter"
        base_gguf, lora_gguf = tmp / f"{arch}-base-f32.gguf", tmp / f"{arch}-lora.gguf"
        kto("export", "gguf", "-m", MODELS / arch, "--outtype", "f32", "-o", base_gguf)
        kto("export", "gguf-lora", "-a", adapter, "-m", MODELS / arch, "--outtype", "f32", "-o", lora_gguf)
        base = AutoModelForCausalLM.from_pretrained(MODELS / arch, dtype=torch.float32)
        peft = PeftModel.from_pretrained(base, adapter).eval()
        llm = load_llama(base_gguf, lora_gguf)
        diffs = [float(np.abs(hf_logits(peft, ids) - llama_logits(llm, ids)).max()) for ids in prompts(arch)]
        merged_gguf = tmp / f"{arch}-merged-f32.gguf"
        kto("export", "gguf", "-m", MODELS / arch, "-a", adapter, "--outtype", "f32", "-o", merged_gguf)
        llm_merged = load_llama(merged_gguf)
        d_merged = [float(np.abs(hf_logits(peft, ids) - llama_logits(llm_merged, ids)).max()) for ids in prompts(arch)]
        scale = max(float(np.abs(hf_logits(peft, ids)).max()) for ids in prompts(arch))
        rs = json.loads((adapter / "adapter_config.json").read_text()).get("use_rslora")
        print(f"lora   {arch:8s}: max |llama.cpp(base f32 GGUF + our GGUF LoRA) - PEFT| = {max(diffs):.4g}; "
              f"llama.cpp(kto export gguf --adapter, f32) - PEFT = {max(d_merged):.4g} (max |logit| {scale:.3g}, "
              f"rslora={rs})")


def check_merge(tmp):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    for arch in ARCHS:
        adapter, out = MERGE_FIX / arch / "adapter", tmp / f"{arch}-merged"
        kto("merge", "-m", MODELS / arch, "-a", adapter, "-o", out, "--dtype", "f32")
        merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        base = AutoModelForCausalLM.from_pretrained(MODELS / arch, dtype=torch.float32)
        peft = PeftModel.from_pretrained(base, adapter).eval()
        diffs = [float(np.abs(hf_logits(peft, ids) - hf_logits(merged, ids)).max()) for ids in prompts(arch)]
        scale = max(float(np.abs(hf_logits(peft, ids)).max()) for ids in prompts(arch))
        peft_merged = peft.merge_and_unload().eval()
        d_merged = [float(np.abs(hf_logits(peft_merged, ids) - hf_logits(merged, ids)).max()) for ids in prompts(arch)]
        print(f"merge  {arch:8s}: max |transformers(kto merged) - PEFT(base + adapter, unmerged)| = {max(diffs):.3g}, "
              f"- PEFT merge_and_unload = {max(d_merged):.3g} (max |logit| {scale:.3g})")


def check_kto(tmp):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    REPO = MODELS.parents[2]
    adapter = tmp / "kto-tiny"
    subprocess.run([str(KTO), "-q", "train", str(REPO / "examples" / "train_tiny.yaml"), f"output_dir={adapter}"],
                   check=True, cwd=REPO)
    base = AutoModelForCausalLM.from_pretrained(MODELS / "llama", dtype=torch.float32)
    peft = PeftModel.from_pretrained(base, adapter).eval()
    ref = {tuple(ids): hf_logits(peft, ids) for ids in prompts("llama")}
    for outtype in ("f16", "f32"):
        path = tmp / f"kto-tiny-{outtype}.gguf"
        kto("export", "gguf", "-m", MODELS / "llama", "-a", adapter, "--outtype", outtype, "-o", path)
        llm = load_llama(path)
        d = max(float(np.abs(r - llama_logits(llm, list(ids))).max()) for ids, r in ref.items())
        print(f"kto    llama {outtype}: llama.cpp(kto export gguf of a KTO-trained adapter) - PEFT = {d:.3g}")
    kto("merge", "-m", MODELS / "llama", "-a", adapter, "-o", tmp / "kto-merged", "--dtype", "f32")
    merged = AutoModelForCausalLM.from_pretrained(tmp / "kto-merged", dtype=torch.float32).eval()
    d = max(float(np.abs(r - hf_logits(merged, list(ids))).max()) for ids, r in ref.items())
    print(f"kto    llama merge: transformers(kto merge of the KTO adapter) - PEFT(base + adapter) = {d:.3g}")


def main():
    checks = sys.argv[1:] or ["logits", "tokens", "quant", "kquant", "lora", "merge", "kto"]
    with tempfile.TemporaryDirectory() as t:
        for c in checks:
            globals()[f"check_{c}"](Path(t))


if __name__ == "__main__":
    main()
