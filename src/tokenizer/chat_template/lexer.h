// Tokeniser for the chat-template Jinja subset. Mirrors jinja2.lexer.Lexer with transformers'
// settings (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False): newlines are
// normalised to "\n", one trailing newline is dropped, `{%-`/`-%}` strip whitespace, `+` keeps it,
// comments vanish and `{% raw %}` bodies become plain text.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kto::jinja {

struct SourcePos {
  int line = 0;
  int column = 0;
};

enum class TokenKind { Data, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, End };

struct Token {
  TokenKind kind = TokenKind::End;
  std::string text;  // data text, name, decoded string literal, operator
  std::int64_t int_value = 0;
  double float_value = 0.0;
  SourcePos pos;
};

// Throws kto::Error(Format) "origin:LINE:COL: message" on a lexical error.
std::vector<Token> lex_template(const std::string& source, const std::string& origin);

}  // namespace kto::jinja
