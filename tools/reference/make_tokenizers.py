#!/usr/bin/env python3
"""Trains four small BPE tokenizers with Hugging Face `tokenizers`, saves them the way
transformers does, and records what AutoTokenizer makes of a corpus of test strings.

Writes tests/fixtures/tokenizers/<name>/{tokenizer.json, tokenizer_config.json, ...,
expected.jsonl}; tests/tokenizer/test_tokenizer_fixtures.cpp checks kto's tokenizer against
them. Deterministic: fixed seeds, no network. Run with the reference venv:

    /work/venv/bin/python tools/reference/make_tokenizers.py
"""
import json
import os
import random
import shutil
import sys
import tempfile

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
MAX_ID = 1024  # tiny test models use vocab_size 1024 with these tokenizers

R_L3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
        r"|\s*[\r\n]+|\s+(?!\S)|\s+")
R_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---------------------------------------------------------------------------------------------
# Training corpus

WORDS = """the of and to in is was for on that with as by at from his it an were are which be this
has had not but have or one their they first new its also after two who been time year more can
other when into all some up only over most such many than these school would about out then city
people may world where between while during both under state through used called known later
model train token learning language large small quick brown fox jumps lazy dog don't won't can't
it's I'm you're we've they'll she'd hello world data value return function class import print
""".split()
ACCENTED = "café naïve résumé façade über straße crème brûlée São Paulo Zürich mañana jalapeño".split()
CYRILLIC = "привет мир это тест токенизатор Москва язык данные".split()
ARABIC = "مرحبا بالعالم هذا اختبار اللغة العربية".split()
CJK = "你好 世界 这是 一个 测试 日本語 のテキスト です 한국어 텍스트".split()
GREEK = "γειά σου κόσμε αβγ Ωμέγα".split()
EMOJI = ["😀", "🚀", "👍🏽", "👩‍💻", "🇫🇷", "❤️", "🎉", "🤖"]
CODE = [
    "def f(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "if __name__ == \"__main__\":\n\tmain()\n",
    "const x = {\"key\": [1, 2, 3], 'b': null};",
    "#include <vector>\nint main() { return 0; }\n",
    "SELECT id, name FROM users WHERE age >= 21;",
    "x = np.zeros((3, 4), dtype=np.float32)  # comment",
]


def make_corpus(rng):
    lines = []
    for _ in range(4000):
        kind = rng.random()
        if kind < 0.55:
            n = rng.randint(3, 16)
            words = [rng.choice(WORDS) for _ in range(n)]
            if rng.random() < 0.3:
                words[0] = words[0].capitalize()
            line = " ".join(words) + rng.choice([".", "!", "?", ",", "", ":"])
        elif kind < 0.7:
            pool = rng.choice([ACCENTED, CYRILLIC, ARABIC, CJK, GREEK])
            line = " ".join(rng.choice(pool) for _ in range(rng.randint(2, 8)))
        elif kind < 0.8:
            line = rng.choice(CODE)
        elif kind < 0.9:
            nums = [str(rng.randint(0, 10 ** rng.randint(1, 9))) for _ in range(rng.randint(1, 5))]
            line = rng.choice(["total: ", "ids ", "", "year "]) + " ".join(nums)
        else:
            line = (rng.choice(WORDS) + rng.choice(["  ", "\t", "   ", " \n "]) + rng.choice(EMOJI)
                    + " " + rng.choice(ACCENTED))
        lines.append(line)
    return lines


# ---------------------------------------------------------------------------------------------
# The four tokenizers

def byte_level_bpe(corpus, split_regex, ignore_merges, normalizer, vocab_size):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.decoder = decoders.ByteLevel()
    return tok


def make_llama3(corpus):
    tok = byte_level_bpe(corpus, R_L3, True, None, 1000)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(R_L3), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    # Added tokens with the matching options tokenizers implements.
    tok.add_special_tokens([AddedToken("<|mask|>", special=True, normalized=False, lstrip=True, rstrip=True)])
    tok.add_tokens([AddedToken("kto_trainer", special=False, normalized=True, single_word=True)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
            special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
              "clean_up_tokenization_spaces": True}
    return tok, config, {}


def make_qwen2(corpus):
    tok = byte_level_bpe(corpus, R_QWEN2, False, normalizers.NFC(), 1000)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(R_QWEN2), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False)
                            for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]])
    tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=False),
                    AddedToken("café", special=False, normalized=True)])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    config = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "clean_up_tokenization_spaces": False}
    return tok, config, {}


BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


def spm_model(corpus, vocab_size):
    """SentencePiece-style BPE: <unk>, <s>, </s>, then the 256 byte tokens, then the learnt pieces."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 256, special_tokens=["<unk>", "<s>", "</s>"],
                                  limit_alphabet=120, show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    data = json.loads(tok.to_str())
    learnt = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {}
    for token, _ in learnt[:3]:
        vocab[token] = len(vocab)
    for token in BYTE_TOKENS:
        vocab[token] = len(vocab)
    for token, _ in learnt[3:]:
        vocab.setdefault(token, len(vocab))
    data["model"]["vocab"] = vocab
    data["added_tokens"] = [dict(t, id=vocab[t["content"]]) for t in data["added_tokens"]]
    return data


def spm_template():
    return processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])


def make_spm_bpe(corpus):
    data = spm_model(corpus, 1000)
    # The legacy merges syntax ("a b") so that both forms are read by the C++ side.
    data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.post_processor = spm_template()
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
              "add_bos_token": True, "add_eos_token": False, "legacy": True,
              "clean_up_tokenization_spaces": False}
    return tok, config, {"legacy_merges": True}


def make_spm_metaspace(corpus):
    data = spm_model(corpus, 1000)
    tok = Tokenizer.from_str(json.dumps(data))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False),
                                     decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = spm_template()
    # transformers 5 drops add_bos_token/add_eos_token when tokenizer.json exists (tokenization_utils_base
    # _from_pretrained), so add_eos_token here must change nothing: a trap for the C++ side.
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>",
              "add_bos_token": True, "add_eos_token": True, "legacy": False,
              "clean_up_tokenization_spaces": False}
    return tok, config, {}


# ---------------------------------------------------------------------------------------------
# Saving and expected outputs

def save(name, tok, config, options):
    out_dir = os.path.join(OUT, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        # Save through transformers so the files look like those on the Hub.
        specials = {k: v for k, v in config.items() if k.endswith("_token") and not k.startswith("add_")}
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, **specials)
        fast.save_pretrained(tmp)
        os.makedirs(out_dir)
        for file in sorted(os.listdir(tmp)):
            shutil.copy(os.path.join(tmp, file), out_dir)
    config_path = os.path.join(out_dir, "tokenizer_config.json")
    with open(config_path) as f:
        saved = json.load(f)
    saved.update(config)
    with open(config_path, "w") as f:
        json.dump(saved, f, indent=2, ensure_ascii=False)
        f.write("\n")
    if options.get("legacy_merges"):
        tok_path = os.path.join(out_dir, "tokenizer.json")
        with open(tok_path) as f:
            data = json.load(f)
        data["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
        with open(tok_path, "w") as f:
            json.dump(data, f, indent=2, ensure_ascii=False)
    return out_dir


def test_strings(rng, specials):
    fixed = [
        "", " ", "  ", "\n", "\n\n\n", "\t", " \t\n ", "a", "Hello world", "Hello world!",
        " leading space", "trailing space ", "  two leading and trailing  ", "multiple    spaces   here",
        "line one\nline two\n\nline four", "tabs\tbetween\twords", "\r\nwindows\r\nlines\r\n",
        "1234567", "3.14159 2718281828 0 00 007", "1,000,000 and 12:30pm", "don't I'LL we'Re SHE'S they'd",
        "it's 'quoted' \"double\"", "café naïve résumé", "e\u0301 combining acute vs é", "A\u030a\u0301 o\u0308",
        "ﬁ ligature and Ⅸ roman", "привет мир", "مرحبا بالعالم", "你好，世界！", "日本語のテキストです。",
        "한국어 텍스트", "γειά σου κόσμε", "emoji 😀 🚀🚀 👍🏽", "family 👨‍👩‍👧‍👦 coder 👩‍💻 flag 🇫🇷",
        "❤️ red heart and ❤ bare", "zero\u200bwidth\u200djoiner", "math ∑ ∫ √ ≠ ≤ ∞",
        "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "    indented\n        more\n", "<html><body>hi</body></html>", "path/to/file.txt C:\\Windows",
        "snake_case camelCase PascalCase kebab-case", "!!!???...,,,;;;", "$100 & 50% @user #tag ~home",
        "ALL CAPS SENTENCE HERE", "the the the the the", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "x" * 5 + " " * 7 + "y", "\u00a0non-breaking\u00a0space", "ideographic\u3000space",
        "<s> literal </s> tokens <unk>", "<0x41> byte token literal", "▁already▁metaspace",
        "ĠĊ byte-level chars", "kto_trainer is a word, kto_trainers is not", "mykto_trainer x kto_trainer!",
        "café at the Café", "<tool_call>{\"name\": \"f\"}</tool_call>",
    ]
    for s in specials:
        fixed += [f"hi{s}there", f"{s}", f"{s}{s}", f"start {s} end", f"{s} leading", f"trailing {s}",
                  f"x  {s}  y", f"\n{s}\n"]
    fixed.append("lstrip and rstrip   <|mask|>   around")
    pieces = WORDS + ACCENTED + CYRILLIC + ARABIC + CJK + GREEK + EMOJI + ["\n", "\t", "  ", "123", "4567", "'s"]
    randoms = []
    for _ in range(60):
        n = rng.randint(1, 12)
        seps = [" ", " ", " ", "", "  ", "\n", "\t"]
        randoms.append("".join(rng.choice(pieces) + rng.choice(seps) for _ in range(n)))
    # Short adversarial strings: odd white space (NEL, LINE SEPARATOR, NBSP), case-folding traps
    # for (?i:'s) (long s, Kelvin sign), combining marks, BOM, byte-token and marker look-alikes.
    odd = list("abcABC xyz'sStTlLmMdD  \t\n\r0123456789.,!?-_<>|/\\\"") + [
        "\u00a0", "\u0085", "\u2028", "\u3000", "\u200b", "\u200d", "\u0301", "\u0308", "é", "e\u0301", "ﬁ",
        "Å", "ß", "ſ", "\u212a", "İ", "ı", "😀", "👩‍💻", "🇫🇷", "\ufeff", "中", "文", "ش", "я", "Ω", "²", "½", "٣",
        "▁", "Ġ", "<0x41>", "'LL", "'Re"] + specials
    for _ in range(80):
        randoms.append("".join(rng.choice(odd) for _ in range(rng.randint(1, 40))))
    long = " ".join(rng.choice(pieces) for _ in range(700))
    return fixed + randoms + [long]


def write_expected(name, out_dir, strings):
    hf = AutoTokenizer.from_pretrained(out_dir)
    rows = []
    for text in strings:
        with_special = hf(text, add_special_tokens=True)["input_ids"]
        without = hf(text, add_special_tokens=False)["input_ids"]
        rows.append({
            "text": text,
            "ids": with_special,
            "ids_no_special": without,
            "decoded": hf.decode(with_special),
            "decoded_skip_special": hf.decode(with_special, skip_special_tokens=True),
        })
        assert all(0 <= i < MAX_ID for i in with_special + without), (name, text)
    # Decoding arbitrary id sequences: stray byte tokens, specials in the middle, partial UTF-8.
    rng = random.Random(5)
    n_ids = max(hf.get_vocab().values()) + 1
    for _ in range(60):
        ids = [rng.randrange(n_ids) for _ in range(rng.randint(1, 16))]
        rows.append({"decode_only": True, "ids": ids, "decoded": hf.decode(ids),
                     "decoded_skip_special": hf.decode(ids, skip_special_tokens=True)})
    assert max(hf.get_vocab().values()) < MAX_ID, name
    with open(os.path.join(out_dir, "expected.jsonl"), "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} strings, {len(hf.get_vocab())} tokens, class {type(hf).__name__}")


def main():
    corpus = make_corpus(random.Random(1234))
    builders = {
        "llama3_bpe": (make_llama3, ["<|begin_of_text|>", "<|eot_id|>", "<|mask|>"]),
        "qwen2_bpe": (make_qwen2, ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>"]),
        "spm_bpe": (make_spm_bpe, ["<s>", "</s>", "<unk>"]),
        "spm_metaspace": (make_spm_metaspace, ["<s>", "</s>"]),
    }
    for name, (build, specials) in builders.items():
        tok, config, options = build(corpus)
        out_dir = save(name, tok, config, options)
        write_expected(name, out_dir, test_strings(random.Random(99), specials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
