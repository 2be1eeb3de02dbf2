// Internal: renders a parsed chat template the way jinja2's generated code would. Owns the variable
// scopes (jinja2 frames: a fresh one per loop iteration and per macro call, none for `if`), the
// loop object, macros and call blocks; builtins.h holds the filters, tests, methods and globals.
#pragma once

#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/chat_template/ast.h"
#include "tokenizer/chat_template/value.h"

namespace kto::jinja {

// One variable scope. Lookups walk the parent chain; `set` always writes the innermost frame.
struct Frame {
  explicit Frame(const Frame* parent_frame) : parent(parent_frame) {}
  const Value* lookup(const std::string& name) const;
  void set(const std::string& name, Value value);

  const Frame* parent;
  std::vector<std::pair<std::string, Value>> vars;
};

class Renderer {
 public:
  explicit Renderer(const std::tm* fixed_now) : fixed_now_(fixed_now) {}
  // Renders `body` with `variables` (render arguments) over the globals; throws EvalError.
  std::string render(const StmtList& body, const Dict& variables);

  Value call(const Value& callee, CallArgs& args);
  Value get_attribute(const Value& obj, const std::string& name);
  Value get_item(const Value& obj, const Value& key);
  std::string strftime_now(const std::string& format) const;

 private:
  enum class Flow { Normal, Break, Continue };
  Flow exec_list(const StmtList& body, Frame& frame, std::string& out);
  Flow exec(const Stmt& s, Frame& frame, std::string& out);
  void exec_for(const Stmt& s, Frame& frame, std::string& out);
  void exec_set(const Stmt& s, Frame& frame);
  void exec_call_block(const Stmt& s, Frame& frame, std::string& out);
  void bind_targets(const std::vector<std::string>& targets, const Value& value, Frame& frame);
  Value make_macro(const Stmt& s);
  Value call_macro(const Stmt& macro, const Frame& parent, CallArgs& args);

  Value eval(const Expr& e, Frame& frame);
  Value eval_node(const Expr& e, Frame& frame);
  Value eval_compare(const Expr& e, Frame& frame);
  Value eval_slice(const Expr& e, Frame& frame);
  Value eval_filter(const Expr& e, Frame& frame);
  Value eval_test(const Expr& e, Frame& frame);
  CallArgs eval_args(const Expr& e, Frame& frame);

  struct DepthGuard {
    explicit DepthGuard(Renderer& r);
    ~DepthGuard() { --renderer.depth_; }
    Renderer& renderer;
  };

  const std::tm* fixed_now_;
  const Frame* root_ = nullptr;  // template-level frame: macros resolve free names here
  int depth_ = 0;
};

// Python binary operators and comparisons on values (eval_ops.cpp).
Value binary_op(const std::string& op, const Value& a, const Value& b);
bool compare_op(const std::string& op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);  // Python `item in container`

}  // namespace kto::jinja
