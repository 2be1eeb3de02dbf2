// Chat-template lexer: a hand-written equivalent of jinja2's regex-driven Lexer.tokeniter for the
// default delimiters, with trim_blocks / lstrip_blocks applied exactly as jinja2 does (see lexer.h).
#include "tokenizer/chat_template/lexer.h"

#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "tokenizer/chat_template/text.h"
#include "util/error.h"

namespace kto::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// jinja2 splits on \r\n, \r and \n, drops one trailing empty line and joins with "\n".
std::string normalize_source(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& origin) : src_(normalize_source(source)), origin_(origin) {
    line_starts_.push_back(0);
    for (std::size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }
  std::vector<Token> run();

 private:
  std::size_t lex_comment(std::size_t pos, std::size_t open);
  enum class Tag { Block, Variable };
  std::size_t lex_tag(std::size_t pos, std::size_t open, Tag tag);
  std::size_t lex_raw(std::size_t pos, std::size_t body);
  std::size_t lex_number(std::size_t pos);
  std::size_t lex_string(std::size_t pos);
  std::size_t match_raw_begin(std::size_t pos) const;
  std::size_t skip_ws(std::size_t pos) const;
  std::string apply_left_strip(std::string text, char sign, char tag_type) const;
  void emit(TokenKind kind, std::string text, std::size_t offset);
  SourcePos pos_of(std::size_t offset) const;
  template <typename... Args>
  [[noreturn]] void fail_at(std::size_t offset, Args&&... args) const {
    SourcePos p = pos_of(offset);
    fail(ErrorKind::Format, origin_, ":", p.line, ":", p.column, ": ", std::forward<Args>(args)...);
  }

  std::string src_;
  const std::string& origin_;
  std::vector<std::size_t> line_starts_;
  std::vector<Token> out_;
  bool line_starting_ = true;  // the last consumed match ended with "\n" (jinja2's line_starting)
};

SourcePos Lexer::pos_of(std::size_t offset) const {
  std::size_t line = 0;
  std::size_t lo = 0, hi = line_starts_.size();
  while (hi - lo > 1) {
    std::size_t mid = (lo + hi) / 2;
    if (line_starts_[mid] <= offset) lo = mid; else hi = mid;
  }
  line = lo;
  std::string_view before(src_.data() + line_starts_[line], offset - line_starts_[line]);
  return SourcePos{static_cast<int>(line) + 1, static_cast<int>(utf8_length(before)) + 1};
}

void Lexer::emit(TokenKind kind, std::string text, std::size_t offset) {
  Token t;
  t.kind = kind;
  t.text = std::move(text);
  t.pos = pos_of(offset);
  out_.push_back(std::move(t));
}

std::size_t Lexer::skip_ws(std::size_t pos) const {
  while (pos < src_.size() && is_space(src_[pos])) ++pos;
  return pos;
}

// The data before a tag: `-` strips all trailing whitespace; otherwise lstrip_blocks removes the
// spaces and tabs between the last line start and a `{%` / `{#` tag.
std::string Lexer::apply_left_strip(std::string text, char sign, char tag_type) const {
  bool lstrip_allowed = tag_type != '{';  // lstrip_blocks never applies to {{ }}
  if (sign == '-') {
    std::size_t end = text.size();
    while (end > 0 && is_space(text[end - 1])) --end;
    text.resize(end);
    return text;
  }
  if (sign == '+' || !lstrip_allowed) return text;
  std::size_t nl = text.rfind('\n');
  std::size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
  if (l_pos == 0 && !line_starting_) return text;
  if (l_pos == text.size()) return text;  // jinja2's \s+ needs at least one character
  for (std::size_t i = l_pos; i < text.size(); ++i) {
    if (!is_space(text[i])) return text;
  }
  text.resize(l_pos);
  return text;
}

// `{%` ['-'|'+'] \s* raw \s* ('-%}' \s* | '%}'): returns the end of the match, or 0.
std::size_t Lexer::match_raw_begin(std::size_t pos) const {
  std::size_t p = pos + 2;
  if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
  p = skip_ws(p);
  if (src_.compare(p, 3, "raw") != 0) return 0;
  p = skip_ws(p + 3);
  if (src_.compare(p, 3, "-%}") == 0) return skip_ws(p + 3);
  if (src_.compare(p, 2, "%}") == 0) return p + 2;
  return 0;
}

std::vector<Token> Lexer::run() {
  std::size_t pos = 0;
  while (pos < src_.size()) {
    std::size_t open = std::string::npos;
    for (std::size_t i = src_.find('{', pos); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) {
        open = i;
        break;
      }
    }
    if (open == std::string::npos) {
      emit(TokenKind::Data, src_.substr(pos), pos);
      break;
    }
    char type = src_[open + 1];
    char sign = (open + 2 < src_.size() && (src_[open + 2] == '-' || src_[open + 2] == '+')) ? src_[open + 2] : 0;
    std::size_t raw_end = type == '%' ? match_raw_begin(open) : 0;
    std::string text = apply_left_strip(src_.substr(pos, open - pos), sign, type);
    if (!text.empty()) emit(TokenKind::Data, std::move(text), pos);
    line_starting_ = false;
    std::size_t body = open + 2 + (sign ? 1 : 0);
    if (raw_end != 0) {
      pos = lex_raw(open, raw_end);
    } else if (type == '#') {
      pos = lex_comment(body, open);
    } else {
      emit(type == '%' ? TokenKind::BlockBegin : TokenKind::VariableBegin, "", open);
      pos = lex_tag(body, open, type == '%' ? Tag::Block : Tag::Variable);
    }
  }
  Token end;
  end.kind = TokenKind::End;
  end.pos = pos_of(src_.size());
  out_.push_back(end);
  return std::move(out_);
}

// Comment body up to the first "#}"; "-#}" strips following whitespace, "#}" eats one newline.
std::size_t Lexer::lex_comment(std::size_t pos, std::size_t open) {
  std::size_t close = src_.find("#}", pos);
  if (close == std::string::npos) fail_at(open, "missing end of comment tag");
  std::size_t end = close + 2;
  char before = close > pos ? src_[close - 1] : 0;
  if (before == '-') {
    end = skip_ws(end);
  } else if (before != '+' && end < src_.size() && src_[end] == '\n') {
    ++end;
  }
  line_starting_ = end > 0 && src_[end - 1] == '\n';
  return end;
}

// `{% raw %}` body up to `{% endraw %}`: plain text, with the same stripping rules as any block.
std::size_t Lexer::lex_raw(std::size_t open, std::size_t body) {
  for (std::size_t i = src_.find("{%", body); i != std::string::npos; i = src_.find("{%", i + 1)) {
    std::size_t p = i + 2;
    char sign = (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ? src_[p] : 0;
    if (sign) ++p;
    p = skip_ws(p);
    if (src_.compare(p, 6, "endraw") != 0) continue;
    p = skip_ws(p + 6);
    std::size_t end;
    if (src_.compare(p, 3, "+%}") == 0) {
      end = p + 3;
    } else if (src_.compare(p, 3, "-%}") == 0) {
      end = skip_ws(p + 3);
    } else if (src_.compare(p, 2, "%}") == 0) {
      end = p + 2;
      if (end < src_.size() && src_[end] == '\n') ++end;
    } else {
      continue;
    }
    line_starting_ = false;  // lstrip for the endraw tag looks at the raw data itself
    std::string text = apply_left_strip(src_.substr(body, i - body), sign, '%');
    if (!text.empty()) emit(TokenKind::Data, std::move(text), body);
    line_starting_ = src_[end - 1] == '\n';
    return end;
  }
  fail_at(open, "missing end of raw directive");
}

std::size_t Lexer::lex_tag(std::size_t pos, std::size_t open, Tag tag) {
  bool block = tag == Tag::Block;
  std::string brackets;  // expected closers, innermost last
  while (true) {
    pos = skip_ws(pos);
    if (pos >= src_.size()) fail_at(open, "unexpected end of template: unclosed '", block ? "{%" : "{{", "'");
    if (brackets.empty()) {
      std::size_t end = 0;
      const char* close = block ? "%}" : "}}";
      if (block && src_.compare(pos, 3, "+%}") == 0) {
        end = pos + 3;
      } else if (src_.compare(pos, 1, "-") == 0 && src_.compare(pos + 1, 2, close) == 0) {
        end = skip_ws(pos + 3);
      } else if (src_.compare(pos, 2, close) == 0) {
        end = pos + 2;
        if (block && end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
      }
      if (end != 0) {
        emit(block ? TokenKind::BlockEnd : TokenKind::VariableEnd, "", pos);
        line_starting_ = src_[end - 1] == '\n';
        return end;
      }
    }
    char c = src_[pos];
    if (is_digit(c)) {
      pos = lex_number(pos);
    } else if (is_name_start(c)) {
      std::size_t e = pos;
      while (e < src_.size() && is_name_char(src_[e])) ++e;
      emit(TokenKind::Name, src_.substr(pos, e - pos), pos);
      pos = e;
    } else if (c == '\'' || c == '"') {
      pos = lex_string(pos);
    } else {
      static const char* const kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                         "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};
      std::string op;
      for (const char* candidate : kOps) {
        if (src_.compare(pos, std::char_traits<char>::length(candidate), candidate) == 0) {
          op = candidate;
          break;
        }
      }
      if (op.empty()) fail_at(pos, "unexpected char '", std::string(1, c), "'");
      if (op == "(" || op == "[" || op == "{") {
        brackets += op == "(" ? ')' : op == "[" ? ']' : '}';
      } else if (op == ")" || op == "]" || op == "}") {
        if (brackets.empty()) fail_at(pos, "unexpected '", op, "'");
        if (brackets.back() != op[0]) fail_at(pos, "unexpected '", op, "', expected '", std::string(1, brackets.back()), "'");
        brackets.pop_back();
      }
      emit(TokenKind::Operator, op, pos);
      pos += op.size();
    }
  }
}


// Digits with single underscores between them: (\d+_)*\d+. Returns the end, or `pos` if none.
std::size_t scan_digits(const std::string& s, std::size_t pos) {
  std::size_t p = pos;
  if (p >= s.size() || !is_digit(s[p])) return pos;
  while (p < s.size() && is_digit(s[p])) {
    ++p;
    if (p + 1 < s.size() && s[p] == '_' && is_digit(s[p + 1])) ++p;
  }
  return p;
}

std::string without_underscores(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '_') out += c;
  }
  return out;
}

// Float when a fraction or exponent follows (jinja2's float_re, tried before integer_re).
std::size_t scan_float(const std::string& s, std::size_t pos) {
  if (pos > 0 && s[pos - 1] == '.') return pos;
  std::size_t p = scan_digits(s, pos);
  bool fraction = false;
  if (p < s.size() && s[p] == '.') {
    std::size_t q = scan_digits(s, p + 1);
    if (q > p + 1) {
      p = q;
      fraction = true;
    }
  }
  if (p < s.size() && (s[p] == 'e' || s[p] == 'E')) {
    std::size_t q = p + 1;
    if (q < s.size() && (s[q] == '+' || s[q] == '-')) ++q;
    std::size_t r = scan_digits(s, q);
    if (r > q) return r;
  }
  return fraction ? p : pos;
}

}  // namespace

std::size_t Lexer::lex_number(std::size_t pos) {
  std::size_t float_end = scan_float(src_, pos);
  Token t;
  t.pos = pos_of(pos);
  if (float_end > pos) {
    t.kind = TokenKind::Float;
    t.text = src_.substr(pos, float_end - pos);
    t.float_value = std::strtod(without_underscores(t.text).c_str(), nullptr);
    out_.push_back(std::move(t));
    return float_end;
  }
  int base = 10;
  std::size_t start = pos;
  if (src_[pos] == '0' && pos + 1 < src_.size()) {
    char p = static_cast<char>(src_[pos + 1] | 0x20);
    base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 10;
    if (base != 10) start = pos + 2;
  }
  std::size_t end = start;
  auto valid = [base](char c) {
    c = static_cast<char>(c | 0x20);
    if (base == 16) return is_digit(c) || (c >= 'a' && c <= 'f');
    return c >= '0' && c < static_cast<char>('0' + base);
  };
  while (end < src_.size() && (valid(src_[end]) || (src_[end] == '_' && end + 1 < src_.size() && valid(src_[end + 1])))) ++end;
  if (end == start) fail_at(pos, "invalid integer literal");
  std::string digits = without_underscores(std::string_view(src_).substr(start, end - start));
  errno = 0;
  long long v = std::strtoll(digits.c_str(), nullptr, base);
  if (errno == ERANGE) fail_at(pos, "integer literal too large");
  t.kind = TokenKind::Integer;
  t.text = src_.substr(pos, end - pos);
  t.int_value = v;
  out_.push_back(std::move(t));
  return end;
}

// String literal with Python escapes (jinja2 decodes with "unicode-escape"); backslash-newline
// is a line continuation.
std::size_t Lexer::lex_string(std::size_t pos) {
  char quote = src_[pos];
  std::string value;
  std::size_t p = pos + 1;
  auto hex = [&](std::size_t at, int n) -> char32_t {
    if (at + static_cast<std::size_t>(n) > src_.size()) fail_at(at, "truncated escape sequence");
    char32_t v = 0;
    for (int k = 0; k < n; ++k) {
      char c = static_cast<char>(src_[at + static_cast<std::size_t>(k)] | 0x20);
      int d = is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
      if (d < 0) fail_at(at, "truncated escape sequence");
      v = v * 16 + static_cast<char32_t>(d);
    }
    return v;
  };
  while (true) {
    if (p >= src_.size()) fail_at(pos, "unterminated string literal");
    char c = src_[p];
    if (c == quote) break;
    if (c != '\\') {
      value += c;
      ++p;
      continue;
    }
    if (p + 1 >= src_.size()) fail_at(pos, "unterminated string literal");
    char e = src_[p + 1];
    p += 2;
    switch (e) {
      case '\n': break;
      case '\\': value += '\\'; break;
      case '\'': value += '\''; break;
      case '"': value += '"'; break;
      case 'a': value += '\a'; break;
      case 'b': value += '\b'; break;
      case 'f': value += '\f'; break;
      case 'n': value += '\n'; break;
      case 'r': value += '\r'; break;
      case 't': value += '\t'; break;
      case 'v': value += '\v'; break;
      case 'x': utf8_append(value, hex(p, 2)); p += 2; break;
      case 'u': utf8_append(value, hex(p, 4)); p += 4; break;
      case 'U': utf8_append(value, hex(p, 8)); p += 8; break;
      default:
        if (e >= '0' && e <= '7') {
          char32_t v = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k, ++p) v = v * 8 + static_cast<char32_t>(src_[p] - '0');
          utf8_append(value, v);
        } else {
          value += '\\';  // unknown escapes stay as written
          value += e;
        }
    }
  }
  Token t;
  t.kind = TokenKind::String;
  t.text = std::move(value);
  t.pos = pos_of(pos);
  out_.push_back(std::move(t));
  return p + 1;
}


std::vector<Token> lex_template(const std::string& source, const std::string& origin) {
  return Lexer(source, origin).run();
}

}  // namespace kto::jinja
