// Expression parsing for chat templates, mirroring jinja2.parser.Parser: conditional expressions
// bind loosest, then or / and / not / comparisons / + - / ~ / * / // % / ** / unary; filters and
// tests bind to a unary operand (so `'a' + x | trim` trims only x), as in jinja2.
#include <algorithm>

#include "tokenizer/chat_template/parser.h"

namespace kto::jinja {

namespace {
constexpr int kMaxDepth = 200;
}

Parser::DepthGuard::DepthGuard(Parser& p) : parser(p) {
  if (++parser.depth_ > kMaxDepth) parser.fail_at(parser.current().pos, "template nested too deeply");
}

std::string Parser::describe(const Token& t) const {
  switch (t.kind) {
    case TokenKind::End: return "end of template";
    case TokenKind::BlockEnd: return "end of statement block";
    case TokenKind::VariableEnd: return "end of print statement";
    case TokenKind::Data: return "template data";
    case TokenKind::String: return "string literal";
    case TokenKind::Integer:
    case TokenKind::Float: return "number '" + t.text + "'";
    default: return "'" + t.text + "'";
  }
}

ExprPtr Parser::make(ExprKind kind, SourcePos pos) const {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->pos = pos;
  return e;
}

void Parser::expect_op(const char* op) {
  if (!skip_op(op)) fail_at(current().pos, "expected '", op, "', got ", describe(current()));
}

const Token& Parser::expect_name() {
  if (current().kind != TokenKind::Name) fail_at(current().pos, "expected a name, got ", describe(current()));
  return advance();
}

void Parser::expect_block_end() {
  if (current().kind != TokenKind::BlockEnd) fail_at(current().pos, "expected end of statement block, got ", describe(current()));
  advance();
}

bool Parser::is_tuple_end() const {
  TokenKind k = current().kind;
  return k == TokenKind::VariableEnd || k == TokenKind::BlockEnd || k == TokenKind::End || at_op(")");
}

ExprPtr Parser::parse_tuple(Operand operand, Parens parens) {
  SourcePos pos = current().pos;
  std::vector<ExprPtr> items;
  bool is_tuple = false;
  while (true) {
    if (!items.empty()) expect_op(",");
    if (is_tuple_end()) break;
    items.push_back(operand == Operand::Conditional ? parse_expression() : parse_or());
    if (at_op(",")) {
      is_tuple = true;
    } else {
      break;
    }
  }
  if (!is_tuple) {
    if (!items.empty()) return std::move(items[0]);
    if (parens != Parens::Explicit) fail_at(current().pos, "expected an expression, got ", describe(current()));
  }
  auto t = make(ExprKind::Tuple, pos);
  t->args = std::move(items);
  return t;
}

ExprPtr Parser::parse_expression() { return parse_condexpr(); }

ExprPtr Parser::parse_condexpr() {
  DepthGuard guard(*this);
  ExprPtr expr = parse_or();
  while (at_name("if")) {
    SourcePos pos = advance().pos;
    auto cond = make(ExprKind::Conditional, pos);
    ExprPtr test = parse_or();
    ExprPtr otherwise = skip_name("else") ? parse_condexpr() : nullptr;
    cond->args.push_back(std::move(expr));
    cond->args.push_back(std::move(test));
    cond->args.push_back(std::move(otherwise));
    expr = std::move(cond);
  }
  return expr;
}

ExprPtr Parser::parse_or() {
  ExprPtr left = parse_and();
  while (at_name("or")) {
    auto node = make(ExprKind::Or, advance().pos);
    node->args.push_back(std::move(left));
    node->args.push_back(parse_and());
    left = std::move(node);
  }
  return left;
}

ExprPtr Parser::parse_and() {
  ExprPtr left = parse_not();
  while (at_name("and")) {
    auto node = make(ExprKind::And, advance().pos);
    node->args.push_back(std::move(left));
    node->args.push_back(parse_not());
    left = std::move(node);
  }
  return left;
}

ExprPtr Parser::parse_not() {
  if (at_name("not")) {
    DepthGuard guard(*this);
    auto node = make(ExprKind::Not, advance().pos);
    node->args.push_back(parse_not());
    return node;
  }
  return parse_compare();
}

ExprPtr Parser::parse_compare() {
  SourcePos pos = current().pos;
  ExprPtr first = parse_math1();
  ExprPtr node;
  static const char* const kOps[] = {"==", "!=", "<", "<=", ">", ">="};
  while (true) {
    std::string op;
    if (current().kind == TokenKind::Operator &&
        std::any_of(std::begin(kOps), std::end(kOps), [&](const char* o) { return current().text == o; })) {
      op = advance().text;
    } else if (skip_name("in")) {
      op = "in";
    } else if (at_name("not") && peek().kind == TokenKind::Name && peek().text == "in") {
      advance();
      advance();
      op = "not in";
    } else {
      break;
    }
    if (!node) {
      node = make(ExprKind::Compare, pos);
      node->args.push_back(std::move(first));
    }
    node->ops.push_back(op);
    node->args.push_back(parse_math1());
  }
  return node ? std::move(node) : std::move(first);
}

namespace {
bool at_any(const Token& t, std::initializer_list<const char*> ops) {
  if (t.kind != TokenKind::Operator) return false;
  return std::any_of(ops.begin(), ops.end(), [&](const char* o) { return t.text == o; });
}
}  // namespace

ExprPtr Parser::parse_math1() {
  ExprPtr left = parse_concat();
  while (at_any(current(), {"+", "-"})) {
    auto node = make(ExprKind::Binary, current().pos);
    node->name = advance().text;
    node->args.push_back(std::move(left));
    node->args.push_back(parse_concat());
    left = std::move(node);
  }
  return left;
}

ExprPtr Parser::parse_concat() {
  ExprPtr left = parse_math2();
  while (at_op("~")) {
    auto node = make(ExprKind::Binary, advance().pos);
    node->name = "~";
    node->args.push_back(std::move(left));
    node->args.push_back(parse_math2());
    left = std::move(node);
  }
  return left;
}

ExprPtr Parser::parse_math2() {
  ExprPtr left = parse_pow();
  while (at_any(current(), {"*", "/", "//", "%"})) {
    auto node = make(ExprKind::Binary, current().pos);
    node->name = advance().text;
    node->args.push_back(std::move(left));
    node->args.push_back(parse_pow());
    left = std::move(node);
  }
  return left;
}

ExprPtr Parser::parse_pow() {
  ExprPtr left = parse_unary(Filters::Apply);
  while (at_op("**")) {
    auto node = make(ExprKind::Binary, advance().pos);
    node->name = "**";
    node->args.push_back(std::move(left));
    node->args.push_back(parse_unary(Filters::Apply));
    left = std::move(node);
  }
  return left;
}

ExprPtr Parser::parse_unary(Filters filters) {
  DepthGuard guard(*this);
  ExprPtr node;
  if (at_op("-") || at_op("+")) {
    const Token& t = advance();
    node = make(t.text == "-" ? ExprKind::Negate : ExprKind::Positive, t.pos);
    node->args.push_back(parse_unary(Filters::Skip));
  } else {
    node = parse_primary();
  }
  node = parse_postfix(std::move(node));
  if (filters == Filters::Apply) node = parse_filter_expr(std::move(node));
  return node;
}

ExprPtr Parser::parse_primary() {
  const Token& t = current();
  switch (t.kind) {
    case TokenKind::Name: {
      advance();
      auto node = make(ExprKind::Literal, t.pos);
      if (t.text == "true" || t.text == "True" || t.text == "false" || t.text == "False") {
        node->literal = Value::boolean(t.text == "true" || t.text == "True");
      } else if (t.text == "none" || t.text == "None") {
        node->literal = Value::none();
      } else {
        node->kind = ExprKind::Name;
        node->name = t.text;
      }
      return node;
    }
    case TokenKind::String: {
      auto node = make(ExprKind::Literal, t.pos);
      std::string s;
      while (current().kind == TokenKind::String) s += advance().text;
      node->literal = Value::string(std::move(s));
      return node;
    }
    case TokenKind::Integer:
    case TokenKind::Float: {
      advance();
      auto node = make(ExprKind::Literal, t.pos);
      node->literal = t.kind == TokenKind::Integer ? Value::integer(t.int_value) : Value::number(t.float_value);
      return node;
    }
    default: break;
  }
  if (skip_op("(")) {
    ExprPtr node = parse_tuple(Operand::Conditional, Parens::Explicit);
    expect_op(")");
    return node;
  }
  if (at_op("[")) return parse_list();
  if (at_op("{")) return parse_dict();
  fail_at(t.pos, "unexpected ", describe(t));
}

ExprPtr Parser::parse_list() {
  auto node = make(ExprKind::List, advance().pos);
  while (!at_op("]")) {
    if (!node->args.empty()) expect_op(",");
    if (at_op("]")) break;
    node->args.push_back(parse_expression());
  }
  expect_op("]");
  return node;
}

ExprPtr Parser::parse_dict() {
  auto node = make(ExprKind::Dict, advance().pos);
  while (!at_op("}")) {
    if (!node->args.empty()) expect_op(",");
    if (at_op("}")) break;
    node->args.push_back(parse_expression());
    expect_op(":");
    node->args.push_back(parse_expression());
  }
  expect_op("}");
  return node;
}

ExprPtr Parser::parse_postfix(ExprPtr node) {
  while (true) {
    if (at_op(".") || at_op("[")) {
      node = parse_subscript(std::move(node));
    } else if (at_op("(")) {
      node = parse_call(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr Parser::parse_filter_expr(ExprPtr node) {
  while (true) {
    if (at_op("|")) {
      node = parse_filter(std::move(node));
    } else if (at_name("is")) {
      node = parse_test(std::move(node));
    } else if (at_op("(")) {
      node = parse_call(std::move(node));
    } else {
      return node;
    }
  }
}

ExprPtr Parser::parse_subscript(ExprPtr node) {
  const Token& t = advance();
  if (t.text == ".") {
    const Token& attr = current();
    if (attr.kind == TokenKind::Name) {
      auto out = make(ExprKind::Attribute, advance().pos);
      out->name = attr.text;
      out->args.push_back(std::move(node));
      return out;
    }
    if (attr.kind != TokenKind::Integer) fail_at(attr.pos, "expected name or number, got ", describe(attr));
    auto out = make(ExprKind::Item, advance().pos);
    auto key = make(ExprKind::Literal, attr.pos);
    key->literal = Value::integer(attr.int_value);
    out->args.push_back(std::move(node));
    out->args.push_back(std::move(key));
    return out;
  }
  ExprPtr key = parse_subscribed();
  expect_op("]");
  if (key->kind == ExprKind::Slice) {
    key->args.insert(key->args.begin(), std::move(node));
    return key;
  }
  auto out = make(ExprKind::Item, t.pos);
  out->args.push_back(std::move(node));
  out->args.push_back(std::move(key));
  return out;
}

// `[a]` or a slice `[start:stop:step]` (returned as a Slice node whose object is filled in later).
ExprPtr Parser::parse_subscribed() {
  SourcePos pos = current().pos;
  ExprPtr start;
  if (!at_op(":")) {
    start = parse_expression();
    if (!at_op(":")) return start;
  }
  advance();
  auto slice = make(ExprKind::Slice, pos);
  slice->args.push_back(std::move(start));
  slice->args.push_back(at_op("]") || at_op(":") ? nullptr : parse_expression());
  ExprPtr step;
  if (skip_op(":") && !at_op("]")) step = parse_expression();
  slice->args.push_back(std::move(step));
  return slice;
}

ExprPtr Parser::parse_call(ExprPtr callee) {
  auto call = make(ExprKind::Call, callee->pos);
  call->args.push_back(std::move(callee));
  parse_call_args(*call);
  return call;
}

void Parser::parse_call_args(Expr& call) {
  expect_op("(");
  bool first = true;
  while (!at_op(")")) {
    if (!first) {
      expect_op(",");
      if (at_op(")")) break;
    }
    first = false;
    if (at_op("*") || at_op("**")) fail_at(current().pos, "*args / **kwargs in calls are not supported");
    if (current().kind == TokenKind::Name && peek().kind == TokenKind::Operator && peek().text == "=") {
      std::string name = advance().text;
      advance();
      call.kwargs.push_back(Keyword{name, parse_expression()});
    } else {
      if (!call.kwargs.empty()) fail_at(current().pos, "positional argument follows keyword argument");
      call.args.push_back(parse_expression());
    }
  }
  expect_op(")");
}

ExprPtr Parser::parse_filter(ExprPtr node) {
  advance();  // '|'
  const Token& name = expect_name();
  std::string full = name.text;
  while (at_op(".")) {
    advance();
    full += "." + expect_name().text;
  }
  if (!filter_exists(full)) fail_at(name.pos, "no filter named '", full, "'");
  auto out = make(ExprKind::Filter, name.pos);
  out->name = full;
  out->args.push_back(std::move(node));
  if (at_op("(")) parse_call_args(*out);
  return out;
}

ExprPtr Parser::parse_test(ExprPtr node) {
  SourcePos pos = advance().pos;  // 'is'
  bool negated = skip_name("not");
  const Token& name = expect_name();
  if (!test_exists(name.text)) fail_at(name.pos, "no test named '", name.text, "'");
  auto test = make(ExprKind::Test, name.pos);
  test->name = name.text;
  test->args.push_back(std::move(node));
  const Token& t = current();
  bool bare_arg = t.kind == TokenKind::Name || t.kind == TokenKind::String || t.kind == TokenKind::Integer ||
                  t.kind == TokenKind::Float || at_op("[") || at_op("{");
  if (at_op("(")) {
    parse_call_args(*test);
  } else if (bare_arg && !at_name("else") && !at_name("or") && !at_name("and")) {
    if (at_name("is")) fail_at(t.pos, "you cannot chain multiple tests with is");
    test->args.push_back(parse_postfix(parse_primary()));
  }
  if (!negated) return test;
  auto out = make(ExprKind::Not, pos);
  out->args.push_back(std::move(test));
  return out;
}

}  // namespace kto::jinja
