#!/usr/bin/env python3
"""Greedy generation with an unmerged PEFT adapter, and chat prompts as transformers renders them.

1. Loads tests/fixtures/models/llama with tests/fixtures/kto_steps/base/adapter_final through
   PeftModel.from_pretrained (LoRA applied on the fly, not merged) and records greedy
   continuations (ids + text) of two plain prompts, and of one chat turn (the prompt from
   apply_chat_template, stopping at eos or the template's <|eot_id|>).
2. For every fixture model with a chat template: the text and ids apply_chat_template gives for
   a 2-turn history (with and without a system message), add_generation_prompt=True.

Writes tests/fixtures/adapter_generate/expected.json; checked by tests/cli/test_chat_cli.cpp and
tests/infer/test_chat.cpp. Run from anywhere with the reference venv:

    /work/venv/bin/python tools/reference/make_adapter_generate.py
"""
import json
import sys
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_models import MAX_NEW_TOKENS, greedy  # noqa: E402  (HF greedy decoding + smallest top-2 gap)

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "tests" / "fixtures" / "models"
ADAPTER = REPO / "tests" / "fixtures" / "kto_steps" / "base" / "adapter_final"
OUT = REPO / "tests" / "fixtures" / "adapter_generate"
PROMPTS = ["The quick brown fox", "Once upon a time, there was"]
CHAT_USER = "Hello! Who are you?"
HISTORY = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Tell me a joke."},
]
SYSTEM = {"role": "system", "content": "You are terse."}


def template_ids(tok, messages):
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def adapter_rows(tok, model):
    eos = [model.generation_config.eos_token_id]
    rows, min_gap = [], float("inf")
    for text in PROMPTS:
        prompt_ids = tok(text)["input_ids"]
        new, gap = greedy(model, prompt_ids, eos)
        min_gap = min(min_gap, gap)
        rows.append({"prompt": text, "prompt_ids": prompt_ids, "new_ids": new,
                     "text_skip_special": tok.decode(new, skip_special_tokens=True)})
    messages = [{"role": "user", "content": CHAT_USER}]
    prompt_ids = template_ids(tok, messages)
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    new, gap = greedy(model, prompt_ids, eos + [eot])
    min_gap = min(min_gap, gap)
    chat = {"user": CHAT_USER, "prompt_ids": prompt_ids, "stop_ids": eos + [eot], "new_ids": new,
            "text_skip_special": tok.decode(new, skip_special_tokens=True)}
    return rows, chat, min_gap


def template_rows():
    out = {}
    for name in ["llama", "mistral", "qwen2", "qwen3"]:
        tok = AutoTokenizer.from_pretrained(MODELS / name)
        rows = []
        for messages in [HISTORY, [SYSTEM] + HISTORY]:
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            rows.append({"messages": messages, "text": text, "ids": template_ids(tok, messages)})
        out[name] = rows
    return out


def main():
    tok = AutoTokenizer.from_pretrained(MODELS / "llama")
    base = AutoModelForCausalLM.from_pretrained(MODELS / "llama", dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, ADAPTER).eval()
    rows, chat, gap = adapter_rows(tok, model)
    with model.disable_adapter():  # the adapter must change the output, else the test proves nothing
        base_new, _ = greedy(model, rows[0]["prompt_ids"], [model.generation_config.eos_token_id])
    result = {"model": "models/llama", "adapter": "kto_steps/base/adapter_final", "max_new_tokens": MAX_NEW_TOKENS,
              "greedy": rows, "chat": chat, "min_greedy_gap": gap,
              "base_differs": base_new != rows[0]["new_ids"], "templates": template_rows()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "expected.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT / 'expected.json'}: min greedy gap {gap:.3g}, adapter changes greedy output: "
          f"{result['base_differs']}")


if __name__ == "__main__":
    main()
