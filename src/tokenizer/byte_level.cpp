// The GPT-2 byte ↔ character table (huggingface/tokenizers `bytes_char`).
#include "tokenizer/byte_level.h"

#include <array>
#include <string>

#include "tokenizer/utf8.h"

namespace kto {
namespace {

bool maps_to_itself(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

struct Table {
  std::array<char32_t, 256> chars{};
  std::array<std::string, 256> utf8{};
  std::array<uint8_t, 68> shifted{};  // U+0100 + k → shifted[k]
  Table() {
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      if (maps_to_itself(b)) {
        chars[b] = static_cast<char32_t>(b);
      } else {
        shifted[next - 0x100] = static_cast<uint8_t>(b);
        chars[b] = next++;
      }
      utf8::append(utf8[b], chars[b]);
    }
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

char32_t byte_level_char(uint8_t byte) { return table().chars[byte]; }

std::optional<uint8_t> byte_level_byte(char32_t character) {
  if (character < 0x100) {
    if (maps_to_itself(static_cast<int>(character))) return static_cast<uint8_t>(character);
    return std::nullopt;
  }
  if (character >= 0x100 + 68) return std::nullopt;
  return table().shifted[character - 0x100];
}

std::string byte_level_encode(std::string_view bytes) {
  const Table& t = table();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.utf8[static_cast<uint8_t>(c)];
  return out;
}

}  // namespace kto
