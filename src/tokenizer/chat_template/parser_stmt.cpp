// Statement (tag) parsing for chat templates, mirroring jinja2.parser.Parser.subparse and its
// parse_for / parse_if / parse_set / parse_macro / parse_call_block, plus the loopcontrols
// extension (break, continue) and transformers' AssistantTracker ({% generation %}).
#include <algorithm>
#include <string_view>

#include "tokenizer/chat_template/parser.h"

namespace kto::jinja {

StmtList Parser::parse_all() {
  Token start;
  StmtList body = parse_body({}, start);
  return body;
}

// Statements up to (not including) one of `end_tags`; the caller consumes the end tag itself.
StmtList Parser::parse_body(std::initializer_list<const char*> end_tags, const Token& opener) {
  DepthGuard guard(*this);
  StmtList body;
  while (true) {
    const Token& t = current();
    if (t.kind == TokenKind::End) {
      if (end_tags.size() == 0) return body;
      const char* closing = *std::find_if(end_tags.begin(), end_tags.end(),
                                          [](const char* e) { return std::string_view(e).substr(0, 3) == "end"; });
      fail_at(opener.pos, "unexpected end of template: '", opener.text, "' block is never closed (expected '",
              closing, "')");
    }
    if (t.kind == TokenKind::Data) {
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::Text;
      s->pos = t.pos;
      s->text = advance().text;
      body.push_back(std::move(s));
    } else if (t.kind == TokenKind::VariableBegin) {
      advance();
      auto s = std::make_unique<Stmt>();
      s->kind = StmtKind::Print;
      s->pos = current().pos;
      s->expr = parse_tuple(Operand::Conditional, Parens::Implicit);
      if (current().kind != TokenKind::VariableEnd) {
        fail_at(current().pos, "expected end of print statement, got ", describe(current()));
      }
      advance();
      body.push_back(std::move(s));
    } else if (t.kind == TokenKind::BlockBegin) {
      const Token& name = peek();
      if (name.kind == TokenKind::Name &&
          std::any_of(end_tags.begin(), end_tags.end(), [&](const char* e) { return name.text == e; })) {
        advance();  // leave the end tag's name as the current token
        return body;
      }
      advance();
      body.push_back(parse_statement());
    } else {
      fail_at(t.pos, "unexpected ", describe(t));
    }
  }
}

void Parser::expect_end_tag(const char* name) {
  if (!at_name(name)) fail_at(current().pos, "expected '", name, "', got ", describe(current()));
  advance();
  expect_block_end();
}

StmtPtr Parser::parse_statement() {
  const Token& tag = current();
  if (tag.kind != TokenKind::Name) fail_at(tag.pos, "tag name expected, got ", describe(tag));
  const std::string& n = tag.text;
  if (n == "for") return parse_for(tag);
  if (n == "if") return parse_if(tag);
  if (n == "set") return parse_set(tag);
  if (n == "macro") return parse_macro(tag);
  if (n == "call") return parse_call_block(tag);
  if (n == "generation") return parse_generation(tag);
  if (n == "break" || n == "continue") {
    if (loop_depth_ == 0) fail_at(tag.pos, "'", n, "' outside of a for loop");
    auto s = std::make_unique<Stmt>();
    s->kind = n == "break" ? StmtKind::Break : StmtKind::Continue;
    s->pos = tag.pos;
    advance();
    expect_block_end();
    return s;
  }
  fail_at(tag.pos, "unknown tag '", n, "'");
}

std::vector<std::string> Parser::parse_target_names() {
  bool parens = skip_op("(");
  std::vector<std::string> names;
  do {
    if (parens && at_op(")")) break;
    names.push_back(expect_name().text);
  } while (skip_op(","));
  if (parens) expect_op(")");
  return names;
}

StmtPtr Parser::parse_for(const Token& tag) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::For;
  s->pos = tag.pos;
  advance();
  s->targets = parse_target_names();
  if (!skip_name("in")) fail_at(current().pos, "expected 'in', got ", describe(current()));
  s->expr = parse_tuple(Operand::Or, Parens::Implicit);
  if (skip_name("if")) s->condition = parse_expression();
  if (at_name("recursive")) fail_at(current().pos, "recursive for loops are not supported");
  expect_block_end();
  ++loop_depth_;
  s->body = parse_body({"endfor", "else"}, tag);
  --loop_depth_;
  if (skip_name("else")) {
    expect_block_end();
    s->else_body = parse_body({"endfor"}, tag);
  }
  expect_end_tag("endfor");
  return s;
}

StmtPtr Parser::parse_if(const Token& tag) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::If;
  s->pos = tag.pos;
  advance();
  s->expr = parse_tuple(Operand::Or, Parens::Implicit);
  expect_block_end();
  s->body = parse_body({"elif", "else", "endif"}, tag);
  if (at_name("elif")) {
    s->else_body.push_back(parse_if(current()));  // the nested if consumes the shared endif
    return s;
  }
  if (skip_name("else")) {
    expect_block_end();
    s->else_body = parse_body({"endif"}, tag);
  }
  expect_end_tag("endif");
  return s;
}

StmtPtr Parser::parse_set(const Token& tag) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::Set;
  s->pos = tag.pos;
  advance();
  if (current().kind == TokenKind::Name && peek().kind == TokenKind::Operator && peek().text == ".") {
    s->targets.push_back(advance().text);
    advance();
    s->attribute = expect_name().text;
  } else {
    s->targets = parse_target_names();
  }
  if (skip_op("=")) {
    s->expr = parse_tuple(Operand::Conditional, Parens::Implicit);
    expect_block_end();
    return s;
  }
  if (at_op("|")) fail_at(current().pos, "filtered block set is not supported");
  if (s->targets.size() != 1 || !s->attribute.empty()) fail_at(current().pos, "expected '='");
  expect_block_end();
  s->kind = StmtKind::SetBlock;
  s->body = parse_body({"endset"}, tag);
  expect_end_tag("endset");
  return s;
}

std::vector<Param> Parser::parse_params() {
  std::vector<Param> params;
  expect_op("(");
  while (!at_op(")")) {
    if (!params.empty()) expect_op(",");
    Param p;
    p.name = expect_name().text;
    if (skip_op("=")) {
      p.default_value = parse_expression();
    } else if (!params.empty() && params.back().default_value) {
      fail_at(current().pos, "non-default argument follows default argument");
    }
    params.push_back(std::move(p));
  }
  expect_op(")");
  return params;
}

StmtPtr Parser::parse_macro(const Token& tag) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::Macro;
  s->pos = tag.pos;
  advance();
  s->text = expect_name().text;
  s->params = parse_params();
  expect_block_end();
  int saved_loop_depth = loop_depth_;
  loop_depth_ = 0;
  s->body = parse_body({"endmacro"}, tag);
  loop_depth_ = saved_loop_depth;
  expect_end_tag("endmacro");
  return s;
}

StmtPtr Parser::parse_call_block(const Token& tag) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::CallBlock;
  s->pos = tag.pos;
  advance();
  if (at_op("(")) s->params = parse_params();
  s->expr = parse_expression();
  if (s->expr->kind != ExprKind::Call) fail_at(s->expr->pos, "expected a call after 'call'");
  expect_block_end();
  int saved_loop_depth = loop_depth_;
  loop_depth_ = 0;
  s->body = parse_body({"endcall"}, tag);
  loop_depth_ = saved_loop_depth;
  expect_end_tag("endcall");
  return s;
}

StmtPtr Parser::parse_generation(const Token& tag) {
  auto s = std::make_unique<Stmt>();
  s->kind = StmtKind::Generation;
  s->pos = tag.pos;
  advance();
  expect_block_end();
  s->body = parse_body({"endgeneration"}, tag);
  expect_end_tag("endgeneration");
  return s;
}

StmtList parse_template(const std::vector<Token>& tokens, const std::string& origin) {
  return Parser(tokens, origin).parse_all();
}

}  // namespace kto::jinja
