// Syntax tree of a parsed chat template: the subset of jinja2.nodes that chat templates use.
// One Expr / Stmt struct each with a kind tag (instead of a class per node) keeps the parser and
// the evaluator short; the comments say which fields each kind uses.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/chat_template/lexer.h"
#include "tokenizer/chat_template/value.h"

namespace kto::jinja {

enum class ExprKind {
  Literal,      // literal
  Name,         // name
  List,         // args = items
  Tuple,        // args = items
  Dict,         // args = key0, value0, key1, value1, ...
  Attribute,    // args[0] = object, name = attribute
  Item,         // args = object, key
  Slice,        // args = object, start, stop, step (each may be null)
  Not,          // args[0]
  Negate,       // args[0]
  Positive,     // args[0]
  Binary,       // name = "+", "-", "*", "/", "//", "%", "**", "~"; args = left, right
  Compare,      // args = operands (n + 1); ops = n operators ("==", "<", "in", "not in", ...)
  And,          // args = left, right
  Or,           // args = left, right
  Conditional,  // args = then, condition, else (else may be null)
  Filter,       // name = filter; args[0] = subject, args[1..] = positional; kwargs
  Test,         // name = test; args[0] = subject, args[1..] = positional; kwargs
  Call,         // args[0] = callee, args[1..] = positional; kwargs
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Keyword {
  std::string name;
  ExprPtr value;
};

struct Expr {
  ExprKind kind = ExprKind::Literal;
  SourcePos pos;
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<Keyword> kwargs;
  std::vector<std::string> ops;
};

enum class StmtKind {
  Text,        // text
  Print,       // expr
  If,          // expr = condition; body; else_body (an elif is a nested If)
  For,         // targets; expr = iterable; condition = inline filter (may be null); body; else_body
  Set,         // targets (several = unpacking) or targets[0] + attribute (namespace); expr = value
  SetBlock,    // targets[0]; body
  Macro,       // text = name; params; body
  CallBlock,   // expr = the call; params = caller's parameters; body = caller's body
  Break,
  Continue,
  Generation,  // body (transformers' {% generation %}: rendered unchanged)
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

struct Param {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Stmt {
  StmtKind kind = StmtKind::Text;
  SourcePos pos;
  std::string text;
  ExprPtr expr;
  ExprPtr condition;
  std::vector<std::string> targets;
  std::string attribute;
  std::vector<Param> params;
  StmtList body;
  StmtList else_body;
};

// Parses a token stream (lex_template) into statements; kto::Error(Format) "origin:L:C: ..." on error.
StmtList parse_template(const std::vector<Token>& tokens, const std::string& origin);

// Registered filter / test names (the parser rejects unknown ones as jinja2 does at compile time).
bool filter_exists(const std::string& name);
bool test_exists(const std::string& name);

}  // namespace kto::jinja
