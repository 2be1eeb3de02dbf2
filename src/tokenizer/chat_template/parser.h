// Internal: the recursive-descent parser shared by parser_expr.cpp (expressions, jinja2.parser's
// parse_condexpr … parse_primary with the same precedence) and parser_stmt.cpp (tags).
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "tokenizer/chat_template/ast.h"
#include "util/error.h"

namespace kto::jinja {

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& origin) : tokens_(tokens), origin_(origin) {}
  StmtList parse_all();

 private:
  // statements (parser_stmt.cpp)
  StmtList parse_body(std::initializer_list<const char*> end_tags, const Token& opener);
  StmtPtr parse_statement();
  StmtPtr parse_for(const Token& tag);
  StmtPtr parse_if(const Token& tag);
  StmtPtr parse_set(const Token& tag);
  StmtPtr parse_macro(const Token& tag);
  StmtPtr parse_call_block(const Token& tag);
  StmtPtr parse_generation(const Token& tag);
  std::vector<std::string> parse_target_names();
  std::vector<Param> parse_params();
  void expect_end_tag(const char* name);

  // expressions (parser_expr.cpp)
  // jinja2's parse_tuple: `Operand::Or` stops before inline if-else (for loop iterables, if tests);
  // `Parens::Explicit` allows the empty tuple `()`.
  enum class Operand { Conditional, Or };
  enum class Parens { Implicit, Explicit };
  ExprPtr parse_tuple(Operand operand, Parens parens);
  ExprPtr parse_expression();
  ExprPtr parse_condexpr();
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  enum class Filters { Apply, Skip };  // the operand of unary -/+ takes no filters (jinja2)
  ExprPtr parse_unary(Filters filters);
  ExprPtr parse_primary();
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_filter_expr(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr node);
  ExprPtr parse_subscribed();
  ExprPtr parse_call(ExprPtr callee);
  ExprPtr parse_filter(ExprPtr node);
  ExprPtr parse_test(ExprPtr node);
  ExprPtr parse_list();
  ExprPtr parse_dict();
  void parse_call_args(Expr& call);
  bool is_tuple_end() const;

  // token stream
  const Token& current() const { return tokens_[pos_]; }
  const Token& peek(std::size_t ahead = 1) const {
    return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)];
  }
  const Token& advance() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }
  bool at_op(const char* op) const { return current().kind == TokenKind::Operator && current().text == op; }
  bool at_name(const char* name) const { return current().kind == TokenKind::Name && current().text == name; }
  bool skip_op(const char* op) {
    if (!at_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* name) {
    if (!at_name(name)) return false;
    advance();
    return true;
  }
  void expect_op(const char* op);
  const Token& expect_name();
  void expect_block_end();
  std::string describe(const Token& t) const;
  ExprPtr make(ExprKind kind, SourcePos pos) const;
  template <typename... Args>
  [[noreturn]] void fail_at(SourcePos pos, Args&&... args) const {
    fail(ErrorKind::Format, origin_, ":", pos.line, ":", pos.column, ": ", std::forward<Args>(args)...);
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& p);
    ~DepthGuard() { --parser.depth_; }
    Parser& parser;
  };

  const std::vector<Token>& tokens_;
  const std::string& origin_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;  // break/continue are only valid inside a for loop
};

}  // namespace kto::jinja
