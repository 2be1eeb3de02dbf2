"""Checks that an adapter written by `kto train` loads in PEFT and scores like kto does.

Trains a few steps with `kto train` on the tiny llama fixture, loads the result with
`PeftModel.from_pretrained` on top of the same base model, and compares the summed completion
log-probs of the dataset rows (TRL's tokenisation: EOS text appended, prompt/full split) with
`kto score --adapter`. Prints the worst relative difference; exits 1 above 1e-4.

Run from the repository root after building: python tools/reference/check_adapter_peft.py [build/kto]
"""
import json
import pathlib
import subprocess
import sys
import tempfile

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
KTO = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "build" / "kto")
MODEL = ROOT / "tests" / "fixtures" / "models" / "llama"
DATA = ROOT / "tests" / "fixtures" / "kto_steps" / "train.jsonl"


def main():
    out = pathlib.Path(tempfile.mkdtemp(prefix="kto-peft-check-"))
    subprocess.run([KTO, "-q", "train", str(ROOT / "examples" / "train_tiny.yaml"), f"output_dir={out}", "max_steps=6",
                    "save_steps=0"], check=True, cwd=ROOT)
    scored = subprocess.run([KTO, "-q", "score", "--model", str(MODEL), "--adapter", str(out), "--data", str(DATA)],
                            check=True, capture_output=True, text=True, cwd=ROOT).stdout.splitlines()
    ours = [json.loads(line)["logp"] for line in scored]

    tok = AutoTokenizer.from_pretrained(MODEL)
    base = AutoModelForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, out).eval()
    worst = 0.0
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    for row, mine in zip(rows, ours):
        completion = row["completion"] if row["completion"].endswith(tok.eos_token) else row["completion"] + tok.eos_token
        prompt_ids = tok(row["prompt"])["input_ids"]
        full = tok(row["prompt"] + completion)["input_ids"]
        ids = torch.tensor([prompt_ids + full[len(prompt_ids):]])
        with torch.no_grad():
            logits = model(ids).logits[0, :-1].float()
        logps = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0]
        theirs = float(logps[len(prompt_ids) - 1:].sum())
        worst = max(worst, abs(mine - theirs) / max(1.0, abs(theirs)))
    print(f"{len(ours)} rows: PEFT loaded {out} and its scores equal `kto score --adapter` "
          f"within {worst:.2e} relative (max)")
    sys.exit(0 if worst < 1e-4 and len(ours) == len(rows) else 1)


if __name__ == "__main__":
    main()
