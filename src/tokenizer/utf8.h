// UTF-8 helpers for the tokenizer: validation, code-point iteration and Rust's
// String::from_utf8_lossy (one U+FFFD per maximal invalid subpart), which the
// huggingface/tokenizers ByteLevel decoder applies to the bytes it reassembles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kto::utf8 {

// Length in bytes of the valid sequence starting at text[pos], or 0 when it is invalid
// (overlong, surrogate, beyond U+10FFFF, truncated).
size_t valid_sequence_length(std::string_view text, size_t pos);

// Index of the first byte that does not start a valid sequence, or text.size().
size_t first_invalid(std::string_view text);
inline bool is_valid(std::string_view text) { return first_invalid(text) == text.size(); }

// Decodes the code point at text[pos] (text must be valid UTF-8); `len` receives its length.
char32_t decode(std::string_view text, size_t pos, size_t* len);
// Byte length of the (valid) sequence whose lead byte is `lead`.
size_t lead_length(unsigned char lead);

void append(std::string& out, char32_t cp);

// Valid sequences copied through; each maximal invalid subpart becomes U+FFFD.
std::string from_lossy(std::string_view bytes);

}  // namespace kto::utf8
