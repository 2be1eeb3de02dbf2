// Unicode text helpers for the chat-template interpreter: UTF-8 <-> code points and the Python str
// predicates the templates rely on (str.isspace for strip/split, str.isprintable for repr, case
// mapping for upper/lower/title). Mirrors CPython's unicodeobject.c behaviour closely enough for
// chat templates; case mapping uses the C library's C.UTF-8 tables (single code point mappings).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kto::jinja {

std::u32string utf8_decode(std::string_view text);  // invalid bytes decode to U+FFFD
std::string utf8_encode(std::u32string_view text);
void utf8_append(std::string& out, char32_t code_point);
std::size_t utf8_length(std::string_view text);  // number of code points

bool py_isspace(char32_t c);      // Python str.isspace for one character
bool py_isprintable(char32_t c);  // Python str.isprintable (approximation for rare categories)
bool py_isalpha(char32_t c);
bool py_isdigit(char32_t c);
bool py_isupper(char32_t c);
bool py_islower(char32_t c);
char32_t py_upper(char32_t c);
char32_t py_lower(char32_t c);

// Python's str.strip family: `chars` empty strips whitespace (py_isspace), otherwise those characters.
enum class StripSide { Both, Left, Right };
std::string py_strip(std::string_view text, StripSide side, const std::u32string* chars = nullptr);

std::string py_upper_str(std::string_view text);
std::string py_lower_str(std::string_view text);

}  // namespace kto::jinja
