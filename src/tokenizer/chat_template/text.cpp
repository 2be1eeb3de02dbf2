// UTF-8 and Python-str predicates for the chat-template interpreter (see text.h).
#include "tokenizer/chat_template/text.h"

#include <locale.h>
#include <wctype.h>

namespace kto::jinja {

namespace {

// A C.UTF-8 locale object for the wide-character classification functions; null where the C
// library has none, and then only ASCII is classified/case-mapped.
locale_t utf8_locale() {
  static locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  return loc;
}

bool ascii(char32_t c) { return c < 0x80; }

}  // namespace

void utf8_append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

std::u32string utf8_decode(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    auto b = static_cast<unsigned char>(text[i]);
    int extra = b < 0x80 ? 0 : (b >> 5) == 0x6 ? 1 : (b >> 4) == 0xE ? 2 : (b >> 3) == 0x1E ? 3 : -1;
    if (extra < 0 || i + static_cast<std::size_t>(extra) >= text.size() + (extra == 0 ? 1 : 0)) {
      out += U'\uFFFD';
      ++i;
      continue;
    }
    char32_t c = extra == 0 ? b : extra == 1 ? (b & 0x1F) : extra == 2 ? (b & 0x0F) : (b & 0x07);
    bool ok = true;
    for (int k = 1; k <= extra; ++k) {
      auto cont = static_cast<unsigned char>(text[i + static_cast<std::size_t>(k)]);
      if ((cont & 0xC0) != 0x80) ok = false;
      c = (c << 6) | (cont & 0x3F);
    }
    if (!ok) {
      out += U'\uFFFD';
      ++i;
      continue;
    }
    out += c;
    i += static_cast<std::size_t>(extra) + 1;
  }
  return out;
}

std::string utf8_encode(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) utf8_append(out, c);
  return out;
}

std::size_t utf8_length(std::string_view text) {
  std::size_t n = 0;
  for (char ch : text) {
    if ((static_cast<unsigned char>(ch) & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool py_isspace(char32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return true;
  if (c < 0x80) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool py_isprintable(char32_t c) {
  if (c < 0x20 || c == 0x7F) return false;
  if (c < 0x7F) return true;
  if (c <= 0xA0 || c == 0xAD) return false;       // C1 controls, NBSP (Zs), soft hyphen (Cf)
  if (c != ' ' && py_isspace(c)) return false;    // other separators (Zs, Zl, Zp)
  if ((c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x2064) ||
      c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB))
    return false;                                  // format characters (Cf)
  if ((c >= 0xD800 && c <= 0xDFFF) || (c >= 0xE000 && c <= 0xF8FF) || c >= 0xF0000) return false;
  return true;
}

bool py_isalpha(char32_t c) {
  if (ascii(c)) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  locale_t loc = utf8_locale();
  return loc != nullptr && iswalpha_l(static_cast<wint_t>(c), loc);
}

bool py_isdigit(char32_t c) {
  if (ascii(c)) return c >= '0' && c <= '9';
  locale_t loc = utf8_locale();
  return loc != nullptr && iswdigit_l(static_cast<wint_t>(c), loc);
}

char32_t py_upper(char32_t c) {
  if (ascii(c)) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  locale_t loc = utf8_locale();
  return loc ? static_cast<char32_t>(towupper_l(static_cast<wint_t>(c), loc)) : c;
}

char32_t py_lower(char32_t c) {
  if (ascii(c)) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  locale_t loc = utf8_locale();
  return loc ? static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), loc)) : c;
}

bool py_isupper(char32_t c) { return py_lower(c) != c; }
bool py_islower(char32_t c) { return py_upper(c) != c; }

std::string py_strip(std::string_view text, StripSide side, const std::u32string* chars) {
  std::u32string cps = utf8_decode(text);
  auto strippable = [&](char32_t c) {
    return chars == nullptr ? py_isspace(c) : chars->find(c) != std::u32string::npos;
  };
  std::size_t begin = 0;
  std::size_t end = cps.size();
  if (side != StripSide::Right) {
    while (begin < end && strippable(cps[begin])) ++begin;
  }
  if (side != StripSide::Left) {
    while (end > begin && strippable(cps[end - 1])) --end;
  }
  return utf8_encode(std::u32string_view(cps).substr(begin, end - begin));
}

std::string py_upper_str(std::string_view text) {
  std::string out;
  for (char32_t c : utf8_decode(text)) {
    if (c == U'\u00DF') {
      out += "SS";  // Python's special casing of sharp s
    } else {
      utf8_append(out, py_upper(c));
    }
  }
  return out;
}

std::string py_lower_str(std::string_view text) {
  std::string out;
  for (char32_t c : utf8_decode(text)) utf8_append(out, py_lower(c));
  return out;
}

}  // namespace kto::jinja
