// GPT-2's bytes_to_unicode table, as huggingface/tokenizers pre_tokenizers/byte_level.rs
// builds it: printable bytes map to themselves, the other 68 to U+0100.. in byte order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kto {

char32_t byte_level_char(uint8_t byte);                      // 0x20 → U+0120 'Ġ'
std::optional<uint8_t> byte_level_byte(char32_t character);  // inverse; nullopt off the table
// Every byte of `bytes` replaced by its table character, UTF-8 encoded.
std::string byte_level_encode(std::string_view bytes);

}  // namespace kto
