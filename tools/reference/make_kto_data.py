#!/usr/bin/env python3
"""What TRL v1.9's KTOTrainer makes of small KTO datasets: the tokenised train dataset (after
prompt extraction, unpairing, EOS, tokenisation, the max_length filter and the KL rotation) and
the micro-batches its train dataloader yields (order, truncation, KL pairs, labels).

Writes the input datasets and tests/fixtures/data/trl_<name>.json. tests/data/test_trl_parity.cpp
checks kto's data pipeline (trl_compat order) against them. A real trl.KTOTrainer is built on CPU
with a tiny random Llama (any model works for data preparation) and the llama3_bpe tokenizer
fixture. Deterministic: fixed strings, no randomness, no network.

Run: PYTHONPATH=/tmp/trl19/x /work/venv/bin/python tools/reference/make_kto_data.py
     (TRL 1.9.0 unpacked at /tmp/trl19/x; transformers 5.x, datasets, torch)
"""
import json
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import torch  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402
from trl import KTOConfig, KTOTrainer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "data"
TOKENIZER = REPO / "tests" / "fixtures" / "tokenizers" / "llama3_bpe"
BATCH = 4
WORDS = ("the quick brown fox jumps over a lazy dog while seven small birds sing about "
         "rivers mountains and cities under a pale morning sky").split()


# ---------------------------------------------------------------------------------------------
# Datasets

def words(n, start=0):
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


def prompt_of_tokens(tok, n_tokens, start):
    """A prompt whose tokenisation (with BOS) has exactly n_tokens: WORDS, then " a" fillers."""
    text, i = "Q:", start
    while len(tok(text + " " + WORDS[i % len(WORDS)])["input_ids"]) <= n_tokens - 2:
        text += " " + WORDS[i % len(WORDS)]
        i += 1
    while len(tok(text)["input_ids"]) < n_tokens:
        text += " a"
    if len(tok(text)["input_ids"]) != n_tokens:
        raise RuntimeError(f"no prompt of exactly {n_tokens} tokens")
    return text


def standard_rows(tok, max_length):
    eos = tok.eos_token
    rows = []
    for i in range(14):
        rows.append({"prompt": f"Q{i}: " + words(2 + i % 5, i), "completion": " " + words(1 + (i * 3) % 7, i + 3),
                     "label": i % 3 != 2})
    rows.insert(3, {"prompt": "Hello ", "completion": "world", "label": True})           # BPE merge across the boundary
    rows.insert(5, {"prompt": "Q: " + words(40, 1), "completion": " no", "label": True})  # prompt > max_length: dropped
    rows.insert(7, {"prompt": prompt_of_tokens(tok, max_length, 2), "completion": " edge", "label": False})  # == max_length: dropped
    rows.insert(9, {"prompt": prompt_of_tokens(tok, max_length - 1, 4), "completion": " one token left", "label": True})
    rows.insert(11, {"prompt": "Q: " + words(6, 5), "completion": " " + words(25, 6), "label": False})  # truncated
    rows.insert(12, {"prompt": "", "completion": "Empty prompt.", "label": True})
    rows.insert(13, {"prompt": "Naïve café, ", "completion": "crème brûlée" + eos, "label": True})  # EOS already there
    rows.append({"prompt": "Last: ", "completion": words(30, 3), "label": False})
    rows.append({"prompt": "Tail one: ", "completion": words(3, 8), "label": True})   # a short last micro-batch
    rows.append({"prompt": "Tail two: ", "completion": words(4, 9), "label": False})
    return rows


def paired_prompt_rows():
    rows = []
    for i in range(7):
        rows.append({"prompt": f"P{i}: " + words(3 + i, i), "chosen": " " + words(2 + i % 3, i + 1),
                     "rejected": " " + words(4 + i % 2, i + 2), "extra": i})
    rows[4]["prompt"] = "P4: " + words(45, 4)  # too long: both halves dropped
    return rows


def paired_noprompt_rows():
    return [
        {"chosen": "The sky is blue.", "rejected": "The sky is green."},   # space moved into completions
        {"chosen": "Answer: yes", "rejected": "Answer: no"},
        {"chosen": "colour me", "rejected": "color me"},                   # differs inside a word
        {"chosen": "Good", "rejected": "Good job"},                        # prefix: TRL cuts one char short
        {"chosen": "Café crème", "rejected": "Café noir"},                 # characters, not bytes
        {"chosen": "Same", "rejected": "Same"},                            # identical: one char short
        {"chosen": "Yes ", "rejected": "No "},                             # first char differs, chosen ends in ' '
        {"chosen": "Yes.", "rejected": "No."},                             # first char differs
        {"chosen": "über alles", "rejected": "über nichts"},
    ]


def paired_big_rows():
    return [{"id": i, "prompt": f"n{i}", "chosen": f" y{i % 7}", "rejected": f" x{i % 5}"} for i in range(1100)]


# ---------------------------------------------------------------------------------------------
# Running TRL

class CountMismatch(logging.Handler):
    def __init__(self):
        super().__init__()
        self.mismatch = 0
        self.imbalance = []

    def emit(self, record):
        msg = record.getMessage()
        if "Mismatch between tokenized prompt" in msg:
            self.mismatch += 1
        elif "recommend EITHER" in msg:
            self.imbalance.append(msg.split("] ", 1)[-1])  # drop accelerate's "[RANK 0] "


def tiny_model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1024, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
    return LlamaForCausalLM(config)


def split_row(input_ids, attention_mask, completion_mask):
    n = int(attention_mask.sum())
    ids = input_ids[:n].tolist()
    mask = completion_mask[:n].tolist()
    prompt_len = mask.index(1) if 1 in mask else n
    assert all(m == 1 for m in mask[prompt_len:])
    return {"input_ids": ids, "prompt_len": prompt_len}


def run_trl(name, rows, max_length, tok, weights=(1.0, 1.0), batches=None, compact=False):
    handler = CountMismatch()
    logger = logging.getLogger("trl.trainer.kto_trainer")
    logger.addHandler(handler)
    with tempfile.TemporaryDirectory() as tmp:
        args = KTOConfig(output_dir=tmp, per_device_train_batch_size=BATCH, max_length=max_length,
                         use_cpu=True, bf16=False, report_to=[], desirable_weight=weights[0],
                         undesirable_weight=weights[1], remove_unused_columns=True, seed=42)
        trainer = KTOTrainer(model=tiny_model(), ref_model=tiny_model(), args=args,
                             train_dataset=Dataset.from_list(rows), processing_class=tok)
        ds = trainer.train_dataset
        loader = trainer.get_train_dataloader()
        got = []
        for b, batch in enumerate(loader):
            if batches is not None and b not in batches:
                continue
            entry = {"index": b, "label": [bool(x) for x in batch["label"].tolist()], "main": [], "kl": []}
            for i in range(batch["input_ids"].shape[0]):
                entry["main"].append(split_row(batch["input_ids"][i], batch["attention_mask"][i], batch["completion_mask"][i]))
                entry["kl"].append(split_row(batch["KL_input_ids"][i], batch["KL_attention_mask"][i],
                                             batch["KL_completion_mask"][i]))
            got.append(entry)
    logger.removeHandler(handler)
    out = {
        "trl_version": trl.__version__,
        "source": f"{name}.jsonl",
        "tokenizer": "tokenizers/llama3_bpe",
        "max_length": max_length,
        "per_device_train_batch_size": BATCH,
        "desirable_weight": weights[0],
        "undesirable_weight": weights[1],
        "rows_in": len(rows),
        "rows_out": len(ds),
        "boundary_mismatches": handler.mismatch,
        "imbalance_warning": handler.imbalance[0] if handler.imbalance else None,
        "n_batches": len(loader),
        "batches": got,
    }
    if compact:
        out["id"] = list(ds["id"])
        out["label"] = [bool(x) for x in list(ds["label"])]
    else:
        out["train_dataset"] = [
            {"prompt_ids": r["prompt_ids"], "completion_ids": r["completion_ids"],
             "KL_completion_ids": r["KL_completion_ids"], "label": bool(r["label"])} for r in ds]
    return out


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(TOKENIZER))
    cases = [
        ("standard", standard_rows(tok, 24), 24, {}),
        ("paired_prompt", paired_prompt_rows(), 32, {}),
        ("paired_noprompt", paired_noprompt_rows(), 32, {"weights": (1.0, 2.5)}),
        ("paired_big", paired_big_rows(), 32, {"batches": {0, 1, 249, 250, 251, 274, 275, 500, 549}, "compact": True}),
    ]
    for name, rows, max_length, kw in cases:
        write_jsonl(OUT / f"{name}.jsonl", rows)
        result = run_trl(name, rows, max_length, tok, **kw)
        path = OUT / f"trl_{name}.json"
        path.write_text(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"{path.relative_to(REPO)}: {result['rows_in']} rows -> {result['rows_out']}, "
              f"{result['n_batches']} batches, {result['boundary_mismatches']} mismatches, "
              f"{path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
