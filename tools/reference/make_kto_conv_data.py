#!/usr/bin/env python3
"""What TRL v1.9's KTOTrainer makes of small CONVERSATIONAL KTO datasets (lists of {role, content}
messages rendered with the model's chat template), and what transformers' apply_chat_template
renders, for kto's conversational data pipeline and `kto template`.

Writes tests/fixtures/conv/:
  <name>.jsonl                 the input datasets
  trl_<name>_<model>.json      TRL's tokenised train dataset and first micro-batches (as
                               make_kto_data.py records them), for the llama and qwen2 fixture
                               models (their chat_template.jinja); checked by tests/data/test_trl_parity.cpp
  trl_mismatch_llama.json      the same with mismatch_template.jinja, whose generation prompt is
                               not the start of its assistant turn (every row mismatches)
  template_<model>.json        apply_chat_template renders (text and ids) of template_conv.json and
                               template_row.json; checked by tests/cli/test_template_cli.cpp

TRL 1.9's KTOTrainer accepts prompt/completion message lists and paired chosen/rejected lists; it
does not accept {"messages"} or ShareGPT {"conversations"} rows (its extract_prompt needs
`chosen`). For those the script converts each row to prompt/completion lists itself (everything
before the last assistant message is the prompt, that message the completion; from/value and
human/gpt renamed) and runs TRL on the converted rows; kto reads the original files.

Run: PYTHONPATH=/tmp/trl19/x /work/venv/bin/python tools/reference/make_kto_conv_data.py
     (TRL 1.9.0 unpacked at /tmp/trl19/x; transformers 5.x, datasets, torch)
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_kto_data import BATCH, WORDS, run_trl, write_jsonl  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "conv"
MODELS = ("llama", "qwen2")
MAX_LENGTH = 72
# A template whose generation prompt ("[assistant]\n") is not how it starts an assistant turn
# ("[assistant]"), so every row's prompt ids mismatch the joint ids: TRL warns per row and trains
# on prompt_ids ++ completion_ids. Run with the llama tokenizer as trl_mismatch_llama.json.
MISMATCH_TEMPLATE = ("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}"
                     "{% if add_generation_prompt %}[assistant]\n{% endif %}")


def words(n, start=0):
    return " ".join(WORDS[(start + i) % len(WORDS)] for i in range(n))


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


# ---------------------------------------------------------------------------------------------
# Datasets

def prompt_completion_rows():
    rows = [
        {"prompt": [user("What is the capital of France?")], "completion": [assistant("Paris.")], "label": True},
        {"prompt": [system("You are terse."), user("Name a colour.")], "completion": [assistant("Blue.")], "label": False},
        {"prompt": [system("Answer in one word."), user("Hi"), assistant("Hello."), user("Sky colour?")],
         "completion": [assistant("Blue")], "label": True},                                   # multi-turn prompt
        {"prompt": [user("Naïve café?")], "completion": [assistant("Crème brûlée.")], "label": True},
        {"prompt": [user("Spaces?")], "completion": [assistant("  padded answer  ")], "label": False},  # llama trims
        {"prompt": [user("Newline?")], "completion": [assistant("\nafter a newline")], "label": True},
        {"prompt": [user("Q: " + words(60, 1))], "completion": [assistant("dropped")], "label": True},  # prompt > max_length
        {"prompt": [user("Long answer please")], "completion": [assistant(words(50, 3))], "label": False},  # truncated
        {"prompt": [user("Ends with an assistant turn"), assistant("Partial")],
         "completion": [assistant("rest")], "label": True},                                   # CUR still adds the generation prompt
        {"prompt": [user("Two replies?")], "completion": [assistant("One."), assistant("Two.")], "label": False},
    ]
    for i in range(6):
        rows.append({"prompt": [user(f"Q{i}: " + words(2 + i % 4, i))], "completion": [assistant(words(1 + i % 5, i + 2))],
                     "label": i % 3 != 1})
    return rows


def paired_noprompt_rows():
    sys_msg, u1 = system("Be kind."), user("How are you?")
    return [
        {"chosen": [sys_msg, u1, assistant("Fine, thanks.")], "rejected": [sys_msg, u1, assistant("Go away.")]},
        {"chosen": [user("2+2?"), assistant("4"), user("3+3?"), assistant("6")],
         "rejected": [user("2+2?"), assistant("4"), user("3+3?"), assistant("7")]},             # multi-turn prefix
        {"chosen": [user("Hi"), assistant("Hello")],
         "rejected": [user("Hi"), assistant("Hello"), user("And?"), assistant("Bye")]},         # prefix: one message short
        {"chosen": [user("Pick"), assistant("A"), user("Sure?"), assistant("Yes")],
         "rejected": [user("Pick"), assistant("B")]},                                           # multi-message completion
        {"chosen": [user("Colour?"), assistant("Red")], "rejected": [user("Colour?"), assistant("Green")]},
        {"chosen": [user("Café?"), assistant("Oui.")], "rejected": [user("Café?"), assistant("Non.")]},
    ]


def paired_prompt_rows():
    return [{"prompt": [system("Short answers."), user(f"P{i}: " + words(2 + i, i))],
             "chosen": [assistant(words(1 + i % 3, i + 1))], "rejected": [assistant(words(2 + i % 2, i + 4))]}
            for i in range(5)]


def messages_rows():
    return [
        {"messages": [user("Hello?"), assistant("Hi.")], "label": True},
        {"messages": [system("Be formal."), user("Greet me."), assistant("Good day.")], "label": False},
        {"messages": [user("a"), assistant("b"), user("c"), assistant("d")], "label": True},
        {"messages": [system("S"), user("one"), assistant("two"), user("three"), assistant("four")], "label": False},
        {"messages": [user("Naïve?"), assistant("Très.")], "label": True},
    ]


def conversations_rows():
    def turn(who, text):
        return {"from": who, "value": text}
    return [
        {"conversations": [turn("human", "Hello?"), turn("gpt", "Hi.")], "label": True},
        {"conversations": [turn("system", "Be formal."), turn("human", "Greet me."), turn("gpt", "Good day.")],
         "label": False},
        {"conversations": [turn("human", "a"), turn("gpt", "b"), turn("human", "c"), turn("gpt", "d")], "label": True},
        {"conversations": [{"role": "user", "content": "ChatML keys"}, {"role": "assistant", "content": "too"}],
         "label": False},
    ]


ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system",
                "tool": "tool"}


def to_prompt_completion(row):
    """kto's rule for {messages} / {conversations} rows (TRL 1.9's KTOTrainer has none)."""
    msgs = row.get("messages") or row.get("conversations")
    norm = []
    for m in msgs:
        if "from" in m:
            norm.append({"role": ROLE_ALIASES[m["from"]], "content": m["value"]})
        else:
            norm.append({"role": m["role"], "content": m["content"]})
    last = max(i for i, m in enumerate(norm) if m["role"] == "assistant")
    return {"prompt": norm[:last], "completion": norm[last:last + 1], "label": row["label"]}


# ---------------------------------------------------------------------------------------------
# Template renders for `kto template`

TEMPLATE_CONV = [system("You are terse."), user("Name a colour."), assistant("Blue."), user("Another?")]
TEMPLATE_ROW = {"prompt": [system("You are terse."), user("Name a colour.")], "completion": [assistant("Blue.")]}


def template_renders(tok):
    def ids(messages, gen):
        return tok.apply_chat_template(messages, add_generation_prompt=gen, tokenize=True, return_dict=True)["input_ids"]

    def text(messages, gen):
        return tok.apply_chat_template(messages, add_generation_prompt=gen, tokenize=False)

    full = TEMPLATE_ROW["prompt"] + TEMPLATE_ROW["completion"]
    prompt_ids = ids(TEMPLATE_ROW["prompt"], True)
    full_ids = ids(full, False)
    return {
        "conv_text": text(TEMPLATE_CONV, False),
        "conv_text_generation_prompt": text(TEMPLATE_CONV, True),
        "conv_ids_generation_prompt": ids(TEMPLATE_CONV, True),
        "conv_pieces_generation_prompt": tok.convert_ids_to_tokens(ids(TEMPLATE_CONV, True)),
        "row_text": text(full, False),
        "row_prompt_ids": prompt_ids,
        "row_completion_ids": full_ids[len(prompt_ids):],
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "template_conv.json").write_text(json.dumps(TEMPLATE_CONV, indent=1) + "\n", encoding="utf-8")
    (OUT / "template_row.json").write_text(json.dumps(TEMPLATE_ROW, indent=1) + "\n", encoding="utf-8")
    cases = [
        ("prompt_completion", prompt_completion_rows(), False),
        ("paired_noprompt", paired_noprompt_rows(), False),
        ("paired_prompt", paired_prompt_rows(), False),
        ("messages", messages_rows(), True),
        ("conversations", conversations_rows(), True),
    ]
    for model in MODELS:
        model_dir = REPO / "tests" / "fixtures" / "models" / model
        tok = AutoTokenizer.from_pretrained(str(model_dir))
        assert tok.chat_template, f"{model_dir} has no chat template"
        renders = template_renders(tok)
        (OUT / f"template_{model}.json").write_text(json.dumps(renders, ensure_ascii=False, indent=1) + "\n",
                                                    encoding="utf-8")
        for name, rows, convert in cases:
            write_jsonl(OUT / f"{name}.jsonl", rows)
            trl_rows = [to_prompt_completion(r) for r in rows] if convert else rows
            result = run_trl(name, trl_rows, MAX_LENGTH, tok)
            result["tokenizer"] = f"models/{model}"
            result["conversational"] = True
            result["converted_by_script"] = convert
            path = OUT / f"trl_{name}_{model}.json"
            path.write_text(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
            print(f"{path.relative_to(REPO)}: {result['rows_in']} rows -> {result['rows_out']}, "
                  f"{result['n_batches']} batches, {result['boundary_mismatches']} mismatches, "
                  f"{path.stat().st_size} bytes")
    tok = AutoTokenizer.from_pretrained(str(REPO / "tests" / "fixtures" / "models" / "llama"))
    tok.chat_template = MISMATCH_TEMPLATE
    (OUT / "mismatch_template.jinja").write_text(MISMATCH_TEMPLATE, encoding="utf-8")
    result = run_trl("prompt_completion", prompt_completion_rows(), MAX_LENGTH, tok)
    result.update(tokenizer="models/llama", conversational=True, converted_by_script=False,
                  chat_template="conv/mismatch_template.jinja")
    path = OUT / "trl_mismatch_llama.json"
    path.write_text(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{path.relative_to(REPO)}: {result['rows_out']} rows, {result['boundary_mismatches']} mismatches")
    print(f"BATCH={BATCH}, max_length={MAX_LENGTH}")


if __name__ == "__main__":
    main()
