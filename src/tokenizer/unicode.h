// Unicode services the tokenizer needs from ICU: normalization forms (for the NFC/NFD/NFKC/
// NFKD normalizers of huggingface/tokenizers) and the character classes behind Rust regex's
// `\w` and `\s`, which tokenizers' added-token matching (single_word, lstrip, rstrip) uses.
#pragma once

#include <string>
#include <string_view>

namespace kto {

enum class NormalForm { NFC, NFD, NFKC, NFKD };

std::string unicode_normalize(NormalForm form, std::string_view text);  // text: valid UTF-8

bool unicode_is_word_char(char32_t c);    // Rust regex \w: Alphabetic, M, Nd, Pc, Join_Control
bool unicode_is_white_space(char32_t c);  // Rust regex \s: White_Space

}  // namespace kto
