// UTF-8 validation and lossy decoding, following the Unicode "maximal subpart" rule that
// Rust's core::str::Utf8Chunks (and so String::from_utf8_lossy) implements.
#include "tokenizer/utf8.h"

namespace kto::utf8 {
namespace {

bool is_cont(unsigned char b) { return (b & 0xC0) == 0x80; }

// Accepted range of the second byte for a given lead byte (Unicode Table 3-7).
void second_byte_range(unsigned char lead, unsigned char* lo, unsigned char* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (lead == 0xE0) *lo = 0xA0;
  if (lead == 0xED) *hi = 0x9F;
  if (lead == 0xF0) *lo = 0x90;
  if (lead == 0xF4) *hi = 0x8F;
}

// Length of the sequence the lead byte announces, 0 if it cannot start one.
size_t expected_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// How many bytes from pos form a valid prefix of a sequence (at least 1): the size of the
// invalid subpart to replace when the full sequence is not valid.
size_t valid_prefix(std::string_view text, size_t pos, size_t* full) {
  auto lead = static_cast<unsigned char>(text[pos]);
  size_t need = expected_length(lead);
  *full = need;
  if (need <= 1) return 1;
  unsigned char lo = 0, hi = 0;
  second_byte_range(lead, &lo, &hi);
  size_t have = 1;
  for (size_t k = 1; k < need; ++k) {
    if (pos + k >= text.size()) break;
    auto b = static_cast<unsigned char>(text[pos + k]);
    bool ok = k == 1 ? (b >= lo && b <= hi) : is_cont(b);
    if (!ok) break;
    ++have;
  }
  return have;
}

}  // namespace

size_t lead_length(unsigned char lead) {
  size_t n = expected_length(lead);
  return n == 0 ? 1 : n;
}

size_t valid_sequence_length(std::string_view text, size_t pos) {
  size_t full = 0;
  size_t have = valid_prefix(text, pos, &full);
  return (full != 0 && have == full) ? full : 0;
}

size_t first_invalid(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    size_t n = valid_sequence_length(text, pos);
    if (n == 0) return pos;
    pos += n;
  }
  return text.size();
}

char32_t decode(std::string_view text, size_t pos, size_t* len) {
  auto b0 = static_cast<unsigned char>(text[pos]);
  size_t n = lead_length(b0);
  *len = n;
  if (n == 1) return b0;
  char32_t cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[pos + k]) & 0x3F);
  return cp;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string from_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t full = 0;
    size_t have = valid_prefix(bytes, pos, &full);
    if (full != 0 && have == full) {
      out.append(bytes.substr(pos, full));
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
    }
    pos += have;
  }
  return out;
}

}  // namespace kto::utf8
